"""Per-customer onboarding, triggered with a business key.

Trigger one run per new customer and find it later by the customer's id:

    zonda trigger onboarding --param user_id=42 --param country=FR --key user-42
    zonda runs list --key user-42

Lesson: DAG params are the function's arguments; return values flow into the next task.
"""

from __future__ import annotations

import zonda
from zonda import dag, task


@task(retries=2, retry_delay="1s")
def fetch_profile(user_id: int) -> dict[str, object]:
    """Load the customer's profile (a real DAG would call the CRM here)."""
    return {"user_id": user_id, "name": f"user {user_id}", "plan": "trial"}


@task
def create_workspace(profile: dict[str, object], country: str) -> str:
    """Create the customer's workspace in their region."""
    region = "eu" if country in {"GB", "FR", "DE", "ES", "IT"} else "us"
    return f"ws-{region}-{profile['user_id']}"


@task
def send_welcome(profile: dict[str, object], workspace: str) -> str:
    """Send the welcome message; the run's business key shows up in the context."""
    key = zonda.context().key
    print(f"welcome {profile['name']} to {workspace} (key {key})")
    return "sent"


@dag(tags=["example", "onboarding"], owner="growth")
def onboarding(user_id: int, country: str = "GB") -> None:
    """Onboard one customer: profile -> workspace -> welcome message."""
    profile = fetch_profile(user_id)
    workspace = create_workspace(profile, country)
    send_welcome(profile, workspace)
