from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from core.exceptions import InvalidInput


def validation_message(error: ValidationError) -> str:
    if hasattr(error, "error_dict"):
        parts = []
        for field, errors in error.message_dict.items():
            label = "" if field == "__all__" else f"{field.replace('_', ' ')}: "
            parts.append(label + " ".join(errors))
        return "; ".join(parts)
    return " ".join(error.messages)


def as_invalid_input(error: ValidationError) -> InvalidInput:
    details = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
    return InvalidInput(validation_message(error), details=details)


def validate_model(instance: models.Model, *, exclude: list[str] | None = None) -> None:
    """Run the model's field, ``clean()`` and constraint checks; raise ``InvalidInput`` with every
    problem in words, before anything is written."""
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as error:
        raise as_invalid_input(error) from error
