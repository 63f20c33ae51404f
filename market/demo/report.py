"""What ``market demo`` prints: what it made (or found made), the tokens to try the API
with, the regulator's key file and the authority a market must trust for it."""

from collections import Counter
from dataclasses import dataclass, field

from market.demo.data import CATEGORIES
from market.demo.history import Made


@dataclass
class Summary:
    accounts: int = 0
    assets: int = 0  # registered
    listings: int = 0  # active
    new_accounts: int = 0
    new_assets: int = 0  # registered by this run
    new_listings: int = 0
    writes: int = 0  # transactions that changed something
    by_category: dict[str, int] = field(default_factory=dict)
    tokens: list[tuple[str, str, str, str]] = field(default_factory=list)  # (role, name, account id, token) shown
    pending: list[str] = field(default_factory=list)  # what is not (yet) done, and why
    seconds: float = 0.0
    base_url: str = "http://127.0.0.1:8000"
    history: Made | None = None  # made by this run
    history_before: str = ""  # what an earlier run made, or why there is none
    period: tuple[str, str] = ("", "")  # the history's first and last day
    regulator: str = ""  # "name (account id)"
    tokens_file: str = ""
    regulator_key: str = ""
    authority: str = ""  # the demo authority's vkey
    configured_authority: str = ""  # MARKET_REGULATOR_AUTHORITY of the environment

    @property
    def changed(self) -> bool:
        return self.writes > 0


def _history(made: Made, period: tuple[str, str]) -> list[str]:
    lines = [
        f"  history   {period[0]} to {period[1]}, {len(made.months)} months: {made.orders} orders, "
        f"{made.settled} settled ({made.bank} bank transfers confirmed by the operator, {made.free} free), "
        f"{made.refunds} refunded after a dispute, {made.regulator_approvals} approved by the regulator, "
        f"{made.refusals} export attempts refused, {made.payouts} payouts"]
    rules = Counter(made.alerts)
    if rules:
        closed = f" ({made.closed} closed by the regulator)" if made.closed else ""
        lines.append("  alerts    " + ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items())) + closed)
    lines += [f"  not done: {problem}" for problem in made.problems[:10]]
    if len(made.problems) > 10:
        lines.append(f"  not done: … and {len(made.problems) - 10} more")
    return lines


def report(summary: Summary) -> list[str]:
    """What ``market demo`` prints."""
    categories = ", ".join(f"{CATEGORIES[c]} {summary.by_category.get(c, 0)}" for c in CATEGORIES)
    lines = [
        f"Demo market {'seeded' if summary.changed else 'already seeded; nothing changed'} "
        f"({summary.seconds:.1f} s):",
        f"  accounts  {summary.accounts:3d} ({summary.new_accounts} new)",
        f"  assets    {summary.assets:3d} registered ({summary.new_assets} new): {categories}",
        f"  listings  {summary.listings:3d} active ({summary.new_listings} new)",
    ]
    if summary.history is not None:
        lines += _history(summary.history, summary.period)
    elif summary.history_before:
        lines.append(f"  history   {summary.history_before}")
    if summary.regulator:
        lines.append(f"  regulator {summary.regulator}, enrolled by the demo authority")
    lines += [f"  not done: {line}" for line in summary.pending]
    if summary.tokens:
        lines.append(f"Tokens to try the API with (every party's: 'market demo --tokens', kept in "
                     f"{summary.tokens_file}):")
        lines += [f"  {role:9s} {token}  {account_id}  {name}" for role, name, account_id, token in summary.tokens]
        lines.append(f"  e.g. curl -s -H 'Authorization: Bearer <token>' '{summary.base_url}/v1/listings?q=交通'")
    else:
        lines.append(f"Every party's token: 'market demo --tokens' (kept in {summary.tokens_file}).")
    if summary.regulator_key:
        lines.append(f"The regulator's key file (the dashboard at {summary.base_url}/oversight asks for it): "
                     f"{summary.regulator_key}")
    if summary.authority and summary.configured_authority.strip() != summary.authority:
        lines.append("A market trusts the demo regulator only when told to trust its authority: start it with")
        lines.append(f"  MARKET_REGULATOR_AUTHORITY='{summary.authority}' make run")
        if summary.configured_authority.strip():
            lines.append("  (MARKET_REGULATOR_AUTHORITY is set to another authority now: with it the demo "
                         "regulator's acts are refused)")
    return lines


__all__ = ["Summary", "report"]
