"""Perpetuals and dated futures as the venues run them: funding rules, risk tiers, the mark with
its basis and the delivery price. Pure functions of numbers; the engine and the simulator call them."""
