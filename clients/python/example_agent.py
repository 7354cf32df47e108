"""A minimal agent: says who it is, records why it buys, pays under a voucher, reports the result.

Run it as the process registered with arid as the agent, e.g.
    python3 example_agent.py --voucher VOUCHER --amount 1250 --currency CNY --payee shop.example
Exits 0 when the payment was authorized and reported, 2 when the daemon refused it.
"""

import argparse
import secrets
import sys

from ari_client import AgentFrozen, AriClient, Denied


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", help="default: $ARI_AGENT_SOCKET, else /run/ari/agent.sock")
    ap.add_argument("--voucher", required=True, help="voucher id, digest or compact form")
    ap.add_argument("--amount", required=True, type=int, help="minor units")
    ap.add_argument("--currency", default="CNY")
    ap.add_argument("--payee", required=True)
    ap.add_argument("--category")
    ap.add_argument("--aud", default="psp.example", help="the verifier the authorization is for")
    args = ap.parse_args()

    with AriClient(args.socket) as ari:
        me = ari.identity()
        print(f"agent {me['agent']} for {me['user']}, key {me['key']['kid']}")
        why = {"payee": args.payee, "amount": args.amount, "currency": args.currency,
               "why": "best offer found"}
        note = ari.record("offer.chosen", why)
        print(f"decision recorded at log index {note['index']}")
        checkout = secrets.token_hex(16)  # a real agent uses the merchant's checkout id
        try:
            grant = ari.authorize(args.voucher, args.amount, args.currency, args.payee,
                                  aud=args.aud, category=args.category, transaction_id=checkout)
        except (Denied, AgentFrozen) as e:
            print(f"payment refused: {e.reason} ({e.message}); decision {e.decision}")
            return 2
        print(f"payment {grant['status']}: decision {grant['decision']}, "
              f"log index {grant.get('log_index')}")
        if grant["status"] != "authorized":
            return 0  # held for an operator; follow it with payment_status
        # ... pay through the rail with grant["authorization"], then say how it went:
        done = ari.report(grant["decision"], "succeeded", reference=f"rail-{checkout[:8]}")
        print(f"reported {done['outcome']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
