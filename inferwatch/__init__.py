"""inferwatch: event-driven monitoring for self-hosted LLM serving.

The one import root of the project. ``inferwatch.contracts``, ``inferwatch.shared``,
``inferwatch.services`` and ``inferwatch.simulators`` are the repository's top-level folders of the
same names (linked here, copied into the wheel), so the layout of the checkout and of an
installed package are one and the same to Python, mypy and setuptools alike.
"""

__version__ = "0.2.0"
