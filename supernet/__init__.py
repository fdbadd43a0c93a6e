"""Weight-sharing supernets and their training: the search space (`space`), elastic ops,
the MobileNetV3 and Transformer spaces, data modules, Lightning modules, recipes, checkpoints
and the training pipeline."""
