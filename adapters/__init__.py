"""Trainer adapters: bind registered estimators into training frameworks (OpenRLHF, TRL, verl)."""

from __future__ import annotations

import importlib.metadata

from ttrl.core.errors import UserError


def check_trainer_version(distribution: str, series: str, *, required: bool, missing: str, why: str) -> str | None:
    """The installed version of a trainer framework; a :class:`UserError` when it is not ``series``.x
    (``why``: what in the adapter depends on that series), or when it is missing and ``required``
    (``missing``: how to install it)."""
    try:
        version = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        if not required:
            return None
        raise UserError(missing) from None
    if version.split(".")[:2] != series.split("."):
        raise UserError(
            f"{distribution} {version} is installed, but ttrl's adapter supports {series}.x only ({why}). "
            f"Install '{distribution}=={series}.*'."
        )
    return version


def load_section(config, section: str, model, *, needs: str, doc: str):
    """Phase-2 validation of a trainer's section of the run config (``openrlhf:``, ``trl:``, ``verl:``)
    with its pydantic ``model``; errors name the file:line. ``needs``: the keys an empty section lacks."""
    from pydantic import ValidationError

    from ttrl.core.config import format_validation_error
    from ttrl.core.errors import OptionError

    data = getattr(config, section)
    if not data:
        raise UserError(f"trainer: {section} needs a `{section}:` section with at least {needs}.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise OptionError(
            format_validation_error(exc, what=f"{section}: section", locate=config.locate, prefix=(section,))
            + f" Settings are documented in {doc}."
        ) from None
