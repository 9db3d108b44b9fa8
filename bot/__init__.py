"""aimodel-gitops: a GitOps bot for AI models."""

__version__ = "0.1.0"  # kept equal to pyproject.toml; used when the distribution is not installed
