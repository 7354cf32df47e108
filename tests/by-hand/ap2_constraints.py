"""By hand (AP2's SDK is not on PyPI at v0.2, so not in CI): for every payment ARI refuses on an
AP2 constraint, AP2's own checker (PaymentMandateChain.verify with a MandateContext) must report
a violation too, for the same open and closed mandates and the same spending so far.

    cargo test -p ari-core mandate::tests::ap2_consistency_cases -- --nocapture \\
        | grep '^ap2-case: ' | sed 's/^ap2-case: //' > /tmp/ap2-cases.jsonl

or, for the daemon's own decisions (its policy on a voucher, AP2 on the open mandate the daemon
writes for it: amounts and budgets in CNY, USD, JPY and KWD, counts, payees, dates):

    cargo test --lib policy::tests::every_ap2 -- --nocapture \\
        | grep '^ap2-case: ' | sed 's/^ap2-case: //' > /tmp/ap2-cases.jsonl
    cd <AP2 checkout, v0.2.0 or later> && PYTHONPATH=code/sdk/python <venv>/bin/python \\
        <this repository>/tests/by-hand/ap2_constraints.py /tmp/ap2-cases.jsonl
"""
import json
import sys

from ap2.sdk.constraints import MandateContext
from ap2.sdk.payment_mandate_chain import PaymentMandateChain

bad = 0
for line in open(sys.argv[1]):
    case = json.loads(line)
    chain = PaymentMandateChain.parse([case["open"], case["closed"]])
    usage = case["usage"]
    ap2 = chain.verify(mandate_context=MandateContext(total_amount=usage["spent"], total_uses=usage["uses"]))
    ari = case["ari"]
    agree = bool(ari) <= bool(ap2)  # ARI refuses => AP2 reports a violation
    same = bool(ari) == bool(ap2)
    bad += not agree
    print(f"{'ok ' if agree else 'BAD'} {'same' if same else 'AP2 stricter'}: "
          f"amount {case['closed']['payment_amount']}, spent {usage['spent']}, uses {usage['uses']}: "
          f"ARI {ari[:1] or 'allows'} / AP2 {ap2[:1] or 'allows'}")
sys.exit(1 if bad else 0)
