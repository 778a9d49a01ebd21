"""The mail domains of organizations: which may be entered, and saving an organization's list.

A domain may belong to one organization only, and neither a public mail domain (the list on the
mail configuration page) nor one of our own domains can be an organization's: mail there comes
from people of many organizations, or from us. The scan binds by these domains
(``app.scanning.store.lookups``); the rules of the match are in ``app.scanner.domains``.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from app.extensions import db
from app.models import MailSettings, Organization, OrganizationDomain
from app.scanner.domains import is_public, normalize_domain, split_domains, stored_domains

MAX_DOMAINS = 50  # per organization: enough for any company, small enough to show on its page


class DomainRules:
    """What a domain is checked against: the public and our own domains, and who owns which domain.

    Built once per form save or per import, then asked per domain. ``all_owners``: read who owns
    every domain at once (an import asks about many); otherwise each domain is asked about alone
    (a form has a few).
    """

    def __init__(self, *, all_owners: bool = False) -> None:
        settings = MailSettings.get()
        self.public = stored_domains(settings.public_domains)
        self.ours = stored_domains(settings.internal_domains)
        self.owners: dict[str, int] | None = None
        if all_owners:
            self.owners = {d: o for d, o in db.session.execute(
                select(OrganizationDomain.domain, OrganizationDomain.organization_id))}

    def owner(self, domain: str) -> int | None:
        """The id of the organization that owns ``domain``, if any."""
        if self.owners is not None:
            return self.owners.get(domain)
        return db.session.scalar(select(OrganizationDomain.organization_id).where(OrganizationDomain.domain == domain))

    def problem(self, domain: str, org_id: int | None) -> str | None:
        """Why ``domain`` (normalized) cannot be the domain of organization ``org_id``, or None."""
        if is_public(domain, self.public):
            return (f"{domain} is a public mail domain: people of many organizations write from it, so it cannot "
                    "bind to one. Add those people as contacts instead (the list is under Mail tools → Mail "
                    "configuration).")
        if is_public(domain, self.ours):
            return f"{domain} is one of our own domains (Mail configuration), not an organization's."
        owner = self.owner(domain)
        if owner is not None and owner != org_id:
            name = db.session.scalar(select(Organization.name).where(Organization.id == owner)) or f"#{owner}"
            return f"{domain} already belongs to the organization {name}."
        return None

    def clean(self, text: str | None, org_id: int | None) -> list[str]:
        """The domains typed for organization ``org_id``, normalized, each once; ``ValueError`` with
        the first problem in words."""
        parts = split_domains(text)
        if len(parts) > MAX_DOMAINS:
            raise ValueError(f"An organization has at most {MAX_DOMAINS} mail domains.")
        out: list[str] = []
        for part in parts:
            domain = normalize_domain(part)
            problem = self.problem(domain, org_id)
            if problem:
                raise ValueError(problem)
            if domain not in out:
                out.append(domain)
        return out


def idle_domains(org: Organization) -> list[str]:
    """The organization's domains that do not bind: made public or our own after they were given to it."""
    if not org.domains:
        return []
    rules = DomainRules()
    return [d for d in org.domain_names if is_public(d, rules.public) or is_public(d, rules.ours)]


def set_domains(org: Organization, domains: Iterable[str]) -> None:
    """Make ``domains`` (already checked) the organization's list; the caller commits."""
    wanted = list(dict.fromkeys(domains))
    keep = [d for d in org.domains if d.domain in wanted]
    have = {d.domain for d in keep}
    org.domains = keep + [OrganizationDomain(domain=d) for d in wanted if d not in have]


class ImportedDomains:
    """The ``domains`` cells of an organizations import: checked row by row like the form's list, and
    each domain given once in the whole file."""

    def __init__(self) -> None:
        self.rules = DomainRules(all_owners=True)
        self.seen: dict[str, int] = {}

    def check(self, text: str | None, line: int) -> tuple[list[str], str | None]:
        """The row's domains, or why the row is skipped (then nothing is remembered of it)."""
        try:
            domains = self.rules.clean(text, None)
        except ValueError as exc:
            return [], f"domains: {exc}"
        for domain in domains:
            if domain in self.seen:
                return [], f"duplicate domain {domain} (already on line {self.seen[domain]})"
        for domain in domains:
            self.seen[domain] = line
        return domains, None
