"""Base models: the catalog, hub downloads, local folder checks, memory estimates."""
