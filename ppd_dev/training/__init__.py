"""Training of the small demo model shipped in ppd_ros/weights (CPU, synthetic world).

Stage 1 trains a small ViT encoder as a discriminative depth regressor (also the baseline);
stage 2 trains the SP-DiT with flow matching on top of the frozen stage-1 encoder.
"""
