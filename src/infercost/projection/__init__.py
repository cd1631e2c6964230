"""Projection to hardware that is not at hand: a model's shape, a step-time model calibrated against measured runs,
and a continuous-batching simulation that yields the same metrics and capacity as a measured run, labelled as
projected with its expected error."""
