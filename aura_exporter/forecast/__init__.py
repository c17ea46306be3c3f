"""Forecasts: the CfC liquid-network forecaster (model, data, train), its checkpoints, and the stage that
turns each cycle's context into quantiles, residuals and breach odds. Modules are imported where used:
importing this package does not load torch."""
