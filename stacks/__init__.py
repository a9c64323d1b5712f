"""CDK for Terraform constructs for the vopr-aws deployment, and the helpers that feed them.

Only `stacks.app` and the construct modules import cdktf; `stacks.user_data` is plain Jinja.
"""
