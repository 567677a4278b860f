"""Volatility-driven margin parameters: price ranges that follow realized volatility."""
