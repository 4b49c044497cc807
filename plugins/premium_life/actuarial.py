"""Life contingencies in Decimal: survival, term and endowment assurance, annuity-due,
and the equivalence-principle premiums (PRODUCT.md, "Term life — default basis").

Pure functions with no floats anywhere, so a premium is the same to the cent on every
machine. Every function computes in its own decimal context of `PRECISION` significant
digits (exp and ln through `Decimal.exp()` / `Decimal.ln()`, which are correctly
rounded), whatever context the caller has; nothing is rounded to the cent here.

A life is described by its one-year survival probabilities from the issue age on,
`ps = [p_x, p_{x+1}, ...]`: a Makeham law (`makeham_survival`) or a table of q_x give
them alike. Whole-life values use `ps` up to the end of the table and close it there:
whoever is still alive at the last age is treated as dying at it, so the whole-life
assurance is the endowment to that age and A = 1 - d ä holds exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from functools import lru_cache

# 40 digits keeps every premium well clear of a rounding boundary's noise: the
# products of up to 120 survival factors lose far fewer than the 28 digits we need.
PRECISION = 40
ONE = Decimal(1)


def context() -> Context:
    """The decimal context every computation of this plugin runs in."""
    return Context(prec=PRECISION, rounding=ROUND_HALF_EVEN)


def discount_factor(interest: Decimal) -> Decimal:
    """v = 1 / (1 + i)."""
    with localcontext(context()):
        return ONE / (ONE + interest)


@lru_cache(maxsize=4096)
def makeham_survival(age: int, a: Decimal, b: Decimal, c: Decimal) -> Decimal:
    """p_x under Makeham's law mu_x = A + B c^x: exp(-A - B c^x (c - 1) / ln c)."""
    # Cached: quotes ask for the same few hundred ages over and over.
    with localcontext(context()):
        return (-a - b * c**age * (c - ONE) / c.ln()).exp()


def survival_curve(ps: Sequence[Decimal]) -> list[Decimal]:
    """[0p_x, 1p_x, ..., np_x] for n = len(ps)."""
    with localcontext(context()):
        curve = [ONE]
        for p in ps:
            curve.append(curve[-1] * p)
        return curve


def term_assurance(ps: Sequence[Decimal], interest: Decimal) -> Decimal:
    """A1_{x:n} = sum_{k=0}^{n-1} v^{k+1} kp_x q_{x+k}, n = len(ps)."""
    v = discount_factor(interest)
    with localcontext(context()):
        total = Decimal(0)
        survived = ONE
        for k, p in enumerate(ps):
            total += v ** (k + 1) * survived * (ONE - p)
            survived *= p
        return total


def annuity_due(ps: Sequence[Decimal], interest: Decimal) -> Decimal:
    """ä_{x:n} = sum_{k=0}^{n-1} v^k kp_x, n = len(ps)."""
    v = discount_factor(interest)
    with localcontext(context()):
        total = Decimal(0)
        survived = ONE
        for k, p in enumerate(ps):
            total += v**k * survived
            survived *= p
        return total


def pure_endowment(ps: Sequence[Decimal], interest: Decimal) -> Decimal:
    """nE_x = v^n np_x, n = len(ps)."""
    v = discount_factor(interest)
    with localcontext(context()):
        return v ** len(ps) * survival_curve(ps)[-1]


def endowment_assurance(ps: Sequence[Decimal], interest: Decimal) -> Decimal:
    """A_{x:n} = A1_{x:n} + nE_x."""
    with localcontext(context()):
        return term_assurance(ps, interest) + pure_endowment(ps, interest)


def whole_life_assurance(ps_to_end: Sequence[Decimal], interest: Decimal) -> Decimal:
    """A_x with the table closed at its last age (see the module docstring)."""
    return endowment_assurance(ps_to_end, interest)


def whole_life_annuity_due(ps_to_end: Sequence[Decimal], interest: Decimal) -> Decimal:
    """ä_x, summed to the last age of the table."""
    return annuity_due(ps_to_end, interest)


def net_premium(sum_assured: Decimal, a1: Decimal, annuity: Decimal) -> Decimal:
    """P = SA A1 / ä, unrounded."""
    with localcontext(context()):
        return sum_assured * a1 / annuity


def gross_premium(
    sum_assured: Decimal,
    a1: Decimal,
    annuity: Decimal,
    first_premium_loading: Decimal,
    later_premium_loading: Decimal,
    per_policy_per_year: Decimal,
) -> Decimal:
    """G = (SA A1 + f ä) / (ä (1 - r) - (r1 - r)), unrounded.

    From the equivalence principle with expenses: G ä = SA A1 + f ä + r G ä + (r1 - r) G,
    the first premium bearing r1 and every later one r.
    """
    r1, r, f = first_premium_loading, later_premium_loading, per_policy_per_year
    with localcontext(context()):
        return (sum_assured * a1 + f * annuity) / (annuity * (ONE - r) - (r1 - r))
