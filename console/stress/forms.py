"""The form a risk officer adds a scenario with: shocks one to a line (``BTC -0.40``)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _


class ScenarioForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    shocks = forms.CharField(
        label=_("Shocks"),
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text=_(
            "One to a line: an asset, a class (crypto, security) or an FX pair, then a relative change: "
            '"BTC -0.40", "security -0.22", "USD/HKD 0.005".'
        ),
    )
    sale_cost = forms.CharField(
        label=_("Sale cost"), required=False, help_text=_("A fraction, e.g. 0.02; empty: each policy's own.")
    )

    def clean_shocks(self) -> dict[str, str]:
        shocks = {}
        for number, line in enumerate(self.cleaned_data["shocks"].splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise forms.ValidationError(
                    _("Line %(n)s: write a name and a change, e.g. BTC -0.40.") % {"n": number}
                )
            shocks[parts[0]] = parts[1]
        if not shocks:
            raise forms.ValidationError(_("Give at least one shock."))
        return shocks
