"""ttrl's contract: hook specs, plugin manager, registry, run config, data model, answers, metrics.

Everything a plugin or an adapter relies on lives here; nothing here imports torch, ray or a trainer.
"""
