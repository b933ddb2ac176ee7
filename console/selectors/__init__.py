"""What the console's pages show (one module per page group); see each module."""

from console.selectors.overview import AtRiskFilters, AtRiskPage, FirmOverview, at_risk_page, firm_overview

__all__ = ["AtRiskFilters", "AtRiskPage", "FirmOverview", "at_risk_page", "firm_overview"]
