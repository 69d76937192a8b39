"""Built-in rules. Importing this package registers them; a new rule is one module plus one import here."""

from podwall.audit.rules import (  # noqa: F401
    pw101_host_network,
    pw102_shared_namespace,
    pw103_default_network,
    pw104_all_interfaces,
    pw105_net_capabilities,
    pw106_bridge_not_isolated,
    pw107_macvlan,
    pw108_unmatched,
    pw109_exception,
)
