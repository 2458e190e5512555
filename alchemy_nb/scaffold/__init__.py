"""Create apps from the alchemy-nb copier template, and update them later.

The template (``templates/app``) ships in the wheel; :func:`new` renders it offline and
records a source that :func:`update` (or plain ``copier update``) follows to later template
versions. See ``_scaffold``'s docstring for where that source lives and why::

    from alchemy_nb.scaffold import new, update

    app = new("my-app", data={"use_queue": True}, defaults=True)
    # ... later, after upgrading alchemy-nb and committing your work:
    update(app.path)

Needs the ``scaffold`` extra: ``pip install 'alchemy-nb[scaffold]'``.
"""

from __future__ import annotations

from ._scaffold import (
    Scaffolded,
    new,
    template_path,
    template_questions,
    template_source,
    update,
)

__all__ = [
    "Scaffolded",
    "new",
    "template_path",
    "template_questions",
    "template_source",
    "update",
]
