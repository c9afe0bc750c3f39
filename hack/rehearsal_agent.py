"""The seed's rehearsal agent: asks the CLAIIM gate before each deploy."""

import asyncio
import os

from claiim import CLAIIMClient, Denied


async def main():
    client = CLAIIMClient(
        gate_url=os.environ["CLAIIM_GATE_URL"],
        agent_token=os.environ["AGENT_TOKEN"],
        skill_version_id=os.environ["SKILL_VERSION_ID"],
    )
    # The gate may take a moment to see a just-accepted agent as active.
    for _ in range(100):
        identity = await client.init()
        if identity.get("active"):
            break
        await asyncio.sleep(0.1)

    print("Action 1: deploy to staging-eu-1")
    print("  Requesting CLAIIM approval for  deploy:staging")
    try:
        result = await client.validate("deploy:staging", {"target": "staging-eu-1"})
        print(f"  ALLOW -- {result.message} ({result.reason})")
        print("  Deployed  (simulated)")
    except Denied as e:
        print(f"  DENY -- {e.reason.lower().replace('_', ' ')}")
        print("  Staging deployment blocked. No action taken.")

    print()
    print("Action 2: deploy to prod-eu-1")
    print("  Requesting CLAIIM approval for  deploy:production")
    try:
        result = await client.validate("deploy:production", {"target": "prod-eu-1"})
        print(f"  ALLOW -- {result.message} ({result.reason})")
        print("  Deployed  (simulated)")
    except Denied as e:
        print(f"  DENY -- {e.reason.lower().replace('_', ' ')}")
        print("  Production deployment blocked. No action taken.")


asyncio.run(main())
