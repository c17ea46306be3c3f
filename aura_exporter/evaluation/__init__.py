"""Evaluation: backtest scores against labeled incidents, with NAB's scoring rules and plain KPIs."""
