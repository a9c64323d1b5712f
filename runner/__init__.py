"""The runner service: runs a deterministic simulator over seed batches forever and records every failing seed.

Standard library and boto3 only, so it runs on the instance, on any Linux box and on a laptop.
"""

__version__ = "0.1.0"
