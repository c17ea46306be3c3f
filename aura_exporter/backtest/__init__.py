"""Backtest: replay an analysis over recorded history exactly as the live sidecar would have run it."""
