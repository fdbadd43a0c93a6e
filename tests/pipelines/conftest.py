"""The pipeline tests use the session's tiny trained checkpoint (`tiny_run`, `tiny_ckpt`) and
`compose_in`, all defined in tests/conftest.py so that other test folders share the same run."""

from tests.conftest import TINY_TRAIN, compose_in

__all__ = ["TINY_TRAIN", "compose_in"]
