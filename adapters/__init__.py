"""Trainer adapters: bind registered estimators into training frameworks (OpenRLHF, TRL)."""
