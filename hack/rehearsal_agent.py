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
    # The gate may take a moment to see a just-accepted agent as active:
    # until then /v/init refuses it with AGENT_INACTIVE.
    for attempt in range(100):
        try:
            await client.init()
            break
        except Denied as e:
            if e.reason != "AGENT_INACTIVE" or attempt == 99:
                raise
        await asyncio.sleep(0.1)

    await deploy(client, 1, "staging-eu-1", "deploy:staging", "Staging")
    print()
    await deploy(client, 2, "prod-eu-1", "deploy:production", "Production")


async def deploy(client, n, target, action, what):
    print(f"Action {n}: deploy to {target}")
    print(f"  Requesting CLAIIM approval for  {action}")
    try:
        result = await client.validate(action, {"target": target})
    except Denied as e:
        print(f"  DENY -- {e.reason.lower().replace('_', ' ')}")
        print(f"  {what} deployment blocked. No action taken.")
        return
    print(f"  ALLOW -- {result.message} ({result.reason})")
    print("  Deployed  (simulated)")


asyncio.run(main())
