"""The console's actions and the permission each one's service asks for: the pages show a button only to
whom it would not refuse, and the role matrix (docs/roles.md) lists them. The services check again."""

from __future__ import annotations

CONSOLE_ACTIONS: dict[str, str] = {
    "extend_deadline": "financing.change_margincall",  # asking; a second risk officer decides (four-eyes)
    "approve_sale": "financing.approve_forcedsale",
    "pause_sale": "financing.approve_forcedsale",
    "resume_sale": "financing.approve_forcedsale",
    "run_top_up": "financing.change_standingtopupinstruction",
    "engage_kill_switch": "financing.engage_killswitch",
    "ask_to_lift_kill_switch": "financing.engage_killswitch",  # a second risk officer lifts it (four-eyes)
    "decide_held_price": "collateral.approve_price",  # a held price or FX rate; never the one who pushed it
}


def actions_allowed(user) -> dict[str, bool]:
    return {key: user.has_perm(permission) for key, permission in CONSOLE_ACTIONS.items()}
