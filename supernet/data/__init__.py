"""Lightning data modules: images (digits, CIFAR, ImageFolder/ImageNet) here, translation
corpora in `translation`."""
