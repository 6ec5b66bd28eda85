"""Every sensor of the platform, one module per domain, plus the change-feed sensor factory.

Only `platform_assets/definitions.py` imports this package: sensors import the domains' jobs, never
the other way round.
"""

from sensors.logbook import LOGBOOK_SENSORS
from sensors.positions import POSITIONS_SENSORS
from sensors.processing import PROCESSING_SENSORS

ALL_SENSORS = [*LOGBOOK_SENSORS, *POSITIONS_SENSORS, *PROCESSING_SENSORS]
