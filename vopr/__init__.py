"""vopr-aws: keep a deterministic simulation tester running on a cheap AWS spot instance.

The operator CLI lives in `vopr.cli`; configuration in `vopr.config`; nothing here imports cdktf.
"""

__version__ = "0.1.0"
