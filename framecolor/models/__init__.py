"""Neural network definitions: the Inception backbone and the colorizer built on it."""
