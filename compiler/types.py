"""The value types of the language."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Type:
    name: str  # number, string, bool, duration, list
    element: Type | None = None  # for lists; None while unknown (an empty list)

    def __str__(self) -> str:
        if self.name == "list":
            return f"list of {self.element.name}s" if self.element else "list"
        return self.name

    @property
    def article(self) -> str:
        """ "a number", "a duration", "a list of strings": for messages."""
        return f"a {self}"

    def matches(self, other: Type) -> bool:
        if self.name != other.name:
            return False
        if self.name == "list" and self.element and other.element:
            return self.element.matches(other.element)
        return True


NUMBER = Type("number")
STRING = Type("string")
BOOL = Type("bool")
DURATION = Type("duration")
ORDERED = (NUMBER, DURATION)


def list_of(element: Type | None) -> Type:
    return Type("list", element)
