"""CDK for Terraform constructs for the vopr-aws deployment, and the helpers that feed them.

Only `stacks.app` and the construct modules (storage, alerting, monitoring, compute) import cdktf, and
`stacks.synth` imports them only on a cache miss; everything else here is plain Python.
"""
