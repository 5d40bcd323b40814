"""Metres for PPD's relative depth: log(d + 1) = a·r + b, from an assumed range (depth_scale),
a fit to a metric sensor (fit, ransac, source_samples, range_window) or to MoGe-2 (model_scale)."""
