"""Run by every Python process started with this folder (and tests/) on PYTHONPATH: where
JAXGAN_TEST_OBJECT_STORE names a folder, its files take the object-store path with the POSIX-only
operations forbidden (tests/object_store_guard.py), so a multi-process run launched by
launch/local_multiprocess.sh is tested as on a bucket."""

import os

if os.environ.get("JAXGAN_TEST_OBJECT_STORE"):
    import object_store_guard

    object_store_guard.install(os.environ["JAXGAN_TEST_OBJECT_STORE"], setattr)
