"""Elastic operations, one per module: each holds the largest weights and runs any active
width, kernel or head count by slicing them (convolutions, BatchNorm, SE, linear, LayerNorm,
attention, embedding)."""
