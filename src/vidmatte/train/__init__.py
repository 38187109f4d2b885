"""Training RVM: datasets and composition, temporally coherent augmentation, losses, an explicit loop with
self-describing checkpoints. Recipes (the four RVM stages) live as config files in ``configs/train/``."""
