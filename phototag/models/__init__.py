"""What a model is (manifests, backbones, recognizers) and how it runs (sessions)."""
