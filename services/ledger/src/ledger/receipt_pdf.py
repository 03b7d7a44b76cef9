"""A payment's receipt as a PDF the subscriber downloads: the same receipt the JSON answer and
the CLI give, laid out on one A4 page."""

from __future__ import annotations

from billing_contracts.money import format_amount

from ledger.domain import Receipt

TITLE = "Payment receipt"


def render(receipt: Receipt) -> bytes:
    """One page: who was credited, with what, when, and the balance it left."""
    from fpdf import FPDF  # 24 MiB of fonts and images: loaded by the first receipt, not by every process

    def money(minor: int) -> str:
        return format_amount(minor, receipt.currency)

    rows = [
        ("Account number", receipt.account_number),
        ("Amount credited", money(receipt.amount)),
        ("Credited at", receipt.credited_at.strftime("%Y-%m-%d %H:%M %Z")),
        ("Payment channel", receipt.channel.value),
        ("Payment reference", receipt.reference),
        ("Balance after the payment", money(receipt.balance_after)),
        ("Bonus earned", money(receipt.bonus_accrued)),
        ("Transaction", str(receipt.transaction_id)),
    ]
    if receipt.placed_from is not None:
        rows.append(("Paid to the number", f"{receipt.placed_from} (placed by operations)"))
    pdf = FPDF(format="A4")
    pdf.set_title(f"{TITLE} {receipt.transaction_id}")
    pdf.set_creator("billing ledger")
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.cell(0, 12, TITLE, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=11)
    for label, value in rows:
        pdf.cell(70, 8, label)
        pdf.cell(0, 8, value, new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
