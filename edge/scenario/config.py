"""Transitional: the names this module had, until every caller imports them from where they live
now (schema, errors, load, resolved). Removed in the same change."""

from edge.scenario.errors import *  # noqa: F401,F403
from edge.scenario.errors import ConfigError, ConfigErrors  # noqa: F401
from edge.scenario.load import *  # noqa: F401,F403
from edge.scenario.load import SCHEDULE_FIELDS, candidate_rollout, convert, load, loads  # noqa: F401
from edge.scenario.resolved import *  # noqa: F401,F403
from edge.scenario.resolved import LoadedScenario, environments_of, preview_host  # noqa: F401
from edge.scenario.schema import *  # noqa: F401,F403
from edge.scenario.schema import group_name, rollout_steps, threshold_rules, tuned_service  # noqa: F401
from edge.scenario.values import Target, dec_hook, enc_hook  # noqa: F401


