"""The predictor core's process-level settings."""


def test_cpu_predictor_keeps_freed_memory_for_reuse(nano_random):
    """Batched decodes allocate > 32 MB blocks; with glibc's defaults every call re-zeroes fresh pages."""
    import sys

    from uncertsam_utils.model import Predictor, allocator

    Predictor(nano_random.model)
    assert allocator._applied is (sys.platform.startswith("linux") and bool(__import__("ctypes").util.find_library("c")))
