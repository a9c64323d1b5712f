"""Plain values the compute construct derives from the config: AMI parameter, spot options, encoded user_data.

Kept free of cdktf so tests and the CLI can use them without importing the provider.
"""

from __future__ import annotations

import base64
from decimal import Decimal

from vopr.config import Config

# Amazon's public SSM parameter that always names the latest Amazon Linux 2023 arm64 AMI.
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
IMDS_HOP_LIMIT = 1
PROJECT_TAG = "vopr-aws"


def user_data_base64(script: str) -> str:
    """The script as EC2 wants it; base64 keeps Terraform from reading `${...}` in shell code as interpolation."""
    return base64.b64encode(script.encode()).decode("ascii")


def spot_options(cfg: Config) -> dict[str, str]:
    """Persistent spot that stops (keeping its disk) when interrupted; a max price only when configured."""
    options = {"spot_instance_type": "persistent", "instance_interruption_behavior": "stop"}
    if cfg.instance.spot_max_price:
        options["max_price"] = format(Decimal(cfg.instance.spot_max_price), "f")
    return options
