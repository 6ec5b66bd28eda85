"""FLUX FA report messages (``FLUXFAReportMessage``) turned into plain dicts.

The output reproduces the Monitorfish pipeline's FLUX parser (MTES-MCT/monitorfish): one report
per ``FAReportDocument``, each repeating the operation fields, with ``log_type`` and ``value`` when
the document holds fishing activities. The reference locates fields with ElementPath queries such
as ``.//ram:ID[@schemeID="UUID"]`` (first match in document order, at any depth); the helpers below
keep exactly those semantics but walk the tree with lxml's C-level tag filters
(``iterdescendants(tag)``), so no XPath is compiled or evaluated per message.

Deliberately stricter than the reference: unknown codes, mixed activity types and values that do
not parse raise ``ValueError`` (wrapped by :mod:`platform_assets.logbook.parse`) instead of
dropping the report or storing ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from lxml.etree import _Element

from platform_assets.logbook.ers import number

RSM_NAMESPACE = "urn:un:unece:uncefact:data:standard:FLUXFAReportMessage:3"
RAM_NAMESPACE = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:20"
UDT_NAMESPACE = "urn:un:unece:uncefact:data:standard:UnqualifiedDataType:20"

Report = dict[str, Any]


def _ram(name: str) -> str:
    return f"{{{RAM_NAMESPACE}}}{name}"


ROOT_TAG = f"{{{RSM_NAMESPACE}}}FLUXFAReportMessage"
_FLUX_REPORT_DOCUMENT = f"{{{RSM_NAMESPACE}}}FLUXReportDocument"
_FA_REPORT_DOCUMENT = f"{{{RSM_NAMESPACE}}}FAReportDocument"
_DATETIME = f"{{{UDT_NAMESPACE}}}DateTime"

_ID = _ram("ID")
_REFERENCED_ID = _ram("ReferencedID")
_TYPE_CODE = _ram("TypeCode")
_REASON_CODE = _ram("ReasonCode")
_ROLE_CODE = _ram("RoleCode")
_NAME = _ram("Name")
_CREATION = _ram("CreationDateTime")
_OCCURRENCE = _ram("OccurrenceDateTime")
_START = _ram("StartDateTime")
_END = _ram("EndDateTime")
_PERIOD = _ram("SpecifiedDelimitedPeriod")
_TRIP = _ram("SpecifiedFishingTrip")
_VESSEL = _ram("SpecifiedVesselTransportMeans")
_CONTACT_PARTY = _ram("SpecifiedContactParty")
_ACTIVITY = _ram("SpecifiedFishingActivity")
_RELATED_LOCATION = _ram("RelatedFLUXLocation")
_CATCH_LOCATION = _ram("SpecifiedFLUXLocation")
_COORDINATE = _ram("SpecifiedPhysicalFLUXGeographicalCoordinate")
_LATITUDE = _ram("LatitudeMeasure")
_LONGITUDE = _ram("LongitudeMeasure")
_CATCH = _ram("SpecifiedFACatch")
_SPECIES = _ram("SpeciesCode")
_SPECIES_TARGET = _ram("SpeciesTargetCode")
_WEIGHT = _ram("WeightMeasure")
_UNIT_QUANTITY = _ram("UnitQuantity")
_PROCESS = _ram("AppliedAAPProcess")
_PRODUCT = _ram("ResultAAPProduct")
_CONVERSION_FACTOR = _ram("ConversionFactorNumeric")
_GEAR = _ram("SpecifiedFishingGear")
_USED_GEAR = _ram("UsedFishingGear")
_GEAR_CHARACTERISTIC = _ram("ApplicableGearCharacteristic")
_VALUE_MEASURE = _ram("ValueMeasure")

# FLUX_GP_PURPOSE codes -> operation type: 9 original, 1 cancellation, 3 deletion, 5 correction.
PURPOSE_OPERATION_TYPES = {"9": "DAT", "1": "DEL", "3": "DEL", "5": "COR"}

# (FLUX_FA_REPORT_TYPE, FLUX_FA_TYPE) -> log type, as the reference names them.
LOG_TYPES: dict[tuple[str, str], str] = {
    ("DECLARATION", "DEPARTURE"): "DEP",
    ("DECLARATION", "FISHING_OPERATION"): "FAR",
    ("DECLARATION", "DISCARD"): "DIS",
    ("DECLARATION", "ARRIVAL"): "RTP",
    ("NOTIFICATION", "ARRIVAL"): "PNO",
    ("DECLARATION", "LANDING"): "LAN",
    ("DECLARATION", "RELOCATION"): "RLC",
    ("DECLARATION", "TRANSHIPMENT"): "TRA",
    ("NOTIFICATION", "TRANSHIPMENT"): "NOT-TRA",
    ("DECLARATION", "AREA_ENTRY"): "COE",
    ("NOTIFICATION", "AREA_ENTRY"): "NOT-COE",
    ("DECLARATION", "AREA_EXIT"): "COX",
    ("NOTIFICATION", "AREA_EXIT"): "NOT-COX",
    ("DECLARATION", "JOINT_FISHING_OPERATION"): "JFO",
    ("DECLARATION", "GEAR_SHOT"): "GEAR_SHOT",
    ("DECLARATION", "GEAR_RETRIEVAL"): "GEAR_RETRIEVAL",
    ("DECLARATION", "START_ACTIVITY"): "START_ACTIVITY",
    ("DECLARATION", "START_FISHING"): "START_FISHING",
}
_REPORT_TYPES = frozenset(report_type for report_type, _ in LOG_TYPES)
_ACTIVITY_TYPES = frozenset(activity_type for _, activity_type in LOG_TYPES)

_ZONE_KEYS = ("faoZone", "economicZone", "statisticalRectangle", "effortZone")
# Zone codes any element may carry; the economic zone is special-cased (only an ID element).
_ZONE_SCHEMES = {
    "FAO_AREA": "faoZone",
    "STAT_RECTANGLE": "statisticalRectangle",
    "EFFORT_ZONE": "effortZone",
}
_PROCESS_KEYS = ("presentation", "packaging", "freshness", "preservationState", "conversionFactor")
_PROCESS_LISTS = {
    "FISH_PRESENTATION": "presentation",
    "FISH_PACKAGING": "packaging",
    "FISH_FRESHNESS": "freshness",
    "FISH_PRESERVATION": "preservationState",
}


# --- ElementPath equivalents ---------------------------------------------------------------------


def _first(el: _Element, tag: str, attr: str | None = None, value: str | None = None) -> Any:
    """``.//tag[@attr="value"]``: first matching descendant in document order, or None."""
    for found in el.iterdescendants(tag):
        if attr is None or found.get(attr) == value:
            return found
    return None


def _text(el: _Element, tag: str, attr: str | None = None, value: str | None = None) -> str | None:
    """Text of ``.//tag[@attr="value"]``."""
    found = _first(el, tag, attr, value)
    return None if found is None else found.text


def _down(el: _Element, tags: tuple[str, ...], attr: str | None, value: str | None) -> Any:
    """``./t1/t2/...[@attr="value"]`` below ``el``: first match, children in document order."""
    if not tags:
        return el if attr is None or el.get(attr) == value else None
    rest = tags[1:]
    for child in el.iterchildren(tags[0]):
        found = _down(child, rest, attr, value)
        if found is not None:
            return found
    return None


def _path(
    el: _Element, tags: tuple[str, ...], attr: str | None = None, value: str | None = None
) -> Any:
    """``.//t0/t1/...[@attr="value"]``: first match, or None."""
    first, rest = tags[0], tags[1:]
    for start in el.iterdescendants(first):
        found = _down(start, rest, attr, value)
        if found is not None:
            return found
    return None


def _path_text(
    el: _Element, tags: tuple[str, ...], attr: str | None = None, value: str | None = None
) -> str | None:
    """Text of ``.//t0/t1/...[@attr="value"]`` (first match)."""
    found = _path(el, tags, attr, value)
    return None if found is None else found.text


def _text_with(el: _Element, attr: str, value: str) -> str | None:
    """Text of ``.//*[@attr="value"]`` (any element name)."""
    for found in el.iterdescendants():
        if found.get(attr) == value:
            return found.text
    return None


def _first_by_scheme(el: _Element, schemes: Iterable[str]) -> dict[str, str | None]:
    """Texts of ``.//*[@schemeID=s]`` for several ``s`` in one walk (first match each)."""
    wanted = set(schemes)
    found: dict[str, str | None] = {}
    for candidate in el.iterdescendants():
        scheme = candidate.get("schemeID")
        if scheme in wanted:
            found[scheme] = candidate.text
            wanted.discard(scheme)
            if not wanted:
                break
    return found


def _grouped(el: _Element) -> dict[Any, list[_Element]]:
    """Children grouped by (namespaced) tag, in document order."""
    groups: dict[Any, list[_Element]] = {}
    for child in el[:]:  # a slice is built in C, much faster than lxml's child iterator
        group = groups.get(child.tag)
        if group is None:
            groups[child.tag] = [child]
        else:
            group.append(child)
    return groups


def instant(raw: str | None, field: str, keep_fraction: bool) -> datetime | None:
    """Aware UTC datetime of an ISO 8601 text; no zone means UTC; missing or blank is None.

    The reference drops fractions of a second on document timestamps but keeps them on
    activity times; ``keep_fraction`` follows it.
    """
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{field} {raw!r} is not an ISO 8601 datetime") from None
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed if keep_fraction else parsed.replace(microsecond=0)


# --- catches, zones, gear ------------------------------------------------------------------------


def _zones_into(zones: dict[str, Any], location: _Element) -> None:
    """Zone codes of one location element (only those present), overriding earlier ones."""
    found: dict[str, str | None] = {}
    for el in location.iterdescendants():
        scheme = el.get("schemeID")
        if scheme is None:
            continue
        key = _ZONE_SCHEMES.get(scheme)
        if key is None:
            # Only an ID names the economic zone; CountryID (a port's country) does not.
            if scheme != "TERRITORY" or el.tag != _ID:
                continue
            key = "economicZone"
        if key not in found:
            found[key] = el.text
    for key, text in found.items():
        if text is not None:
            zones[key] = text


def _complete(data: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Give every key of a group a value, None when absent (the reference's complete_*)."""
    for key in keys:
        if key not in data:
            data[key] = None


def _process_into(data: dict[str, Any], process: _Element) -> None:
    """Presentation, packaging, freshness, preservation and conversion factor of a process."""
    found: dict[str, str | None] = {}
    for el in process.iterdescendants():
        if el.tag == _CONVERSION_FACTOR:
            if "conversionFactor" not in found:
                found["conversionFactor"] = el.text
            continue
        key = _PROCESS_LISTS.get(el.get("listID"))  # type: ignore[arg-type]
        if key is not None and key not in found:
            found[key] = el.text
    factor = found.pop("conversionFactor", None)
    if factor is not None:
        converted = number(factor, "ConversionFactorNumeric")
        if converted is not None:
            data["conversionFactor"] = converted
    for key, text in found.items():
        if text is not None:
            data[key] = text


def _catch(catch: _Element, net_weight: bool = False) -> dict[str, Any]:
    """One catch. ``net_weight`` (landings) prefers the processed product's weight."""
    species = live = net = count = None
    seen_species = seen_live = seen_net = seen_count = False
    for el in catch.iterdescendants(_SPECIES, _WEIGHT, _UNIT_QUANTITY):
        tag = el.tag
        if tag == _WEIGHT:
            if el.get("unitCode") != "KGM":
                continue
            if not seen_live:
                live, seen_live = el.text, True
            if not seen_net and el.getparent().tag == _PRODUCT:
                net, seen_net = el.text, True
        elif tag == _SPECIES:
            if not seen_species and el.get("listID") == "FAO_SPECIES":
                species, seen_species = el.text, True
        elif not seen_count:
            count, seen_count = el.text, True
    data: dict[str, Any] = {
        "species": species,
        "weight": number(net if net_weight and seen_net else live, "WeightMeasure"),
        "nbFish": number(count, "UnitQuantity"),
    }
    located = processed = False
    for child in catch:
        tag = child.tag
        if tag == _CATCH_LOCATION:
            _zones_into(data, child)
            located = True
        elif tag == _PROCESS:
            _process_into(data, child)
            processed = True
    if located:
        _complete(data, _ZONE_KEYS)
    if processed:
        _complete(data, _PROCESS_KEYS)
    return data


def _activity_zones(locations: list[_Element]) -> dict[str, Any] | None:
    """Zones declared on the activity, applied to all its catches; None when none is declared."""
    zones: dict[str, Any] = {}
    for location in locations:
        _zones_into(zones, location)
    if not zones:
        return None
    _complete(zones, _ZONE_KEYS)
    return zones


def _catches(
    catches: Iterable[_Element], zones: dict[str, Any] | None, net_weight: bool = False
) -> list[dict[str, Any]]:
    """Catches, with the activity's zones overriding the catch's own when there are any."""
    parsed = [_catch(catch, net_weight) for catch in catches]
    if zones:
        for data in parsed:
            data.update(zones)
    return parsed


def _characteristic(candidates: Iterable[_Element], code: str) -> str | None:
    """ValueMeasure of the first gear characteristic whose TypeCode is ``code``."""
    for characteristic in candidates:
        if any(type_code.text == code for type_code in characteristic.iterchildren(_TYPE_CODE)):
            for measure in characteristic.iterchildren(_VALUE_MEASURE):
                return measure.text
    return None


def _gear(gear: _Element) -> dict[str, Any]:
    """Gear type, mesh (ME) and main dimension (GM), both numbers."""
    return {
        "gear": _text(gear, _TYPE_CODE, "listID", "GEAR_TYPE"),
        "mesh": number(_characteristic(gear.iterdescendants(_GEAR_CHARACTERISTIC), "ME"), "ME"),
        "dimensions": number(_characteristic(gear.iterchildren(_GEAR_CHARACTERISTIC), "GM"), "GM"),
    }


def _gear_onboard_into(value: dict[str, Any], activity: _Element, groups: dict) -> None:
    """Gear list of DEP/RTP: the activity's gears, else the gear a catch was taken with."""
    if _GEAR in groups:
        value["gearOnboard"] = [_gear(gear) for gear in groups[_GEAR]]
        return
    used = _path(activity, (_CATCH, _USED_GEAR))
    if used is not None:
        value["gearOnboard"] = [_gear(used)]


def _position(activity: _Element) -> tuple[float | None, float | None] | None:
    """Latitude and longitude of the first coordinate anywhere in the activity."""
    coordinate = _first(activity, _COORDINATE)
    if coordinate is None:
        return None
    return _coordinate(coordinate)


def _coordinate(coordinate: _Element) -> tuple[float | None, float | None]:
    return (
        number(_text(coordinate, _LATITUDE), "LatitudeMeasure"),
        number(_text(coordinate, _LONGITUDE), "LongitudeMeasure"),
    )


def _port(activity: _Element) -> str | None:
    return _path_text(activity, (_RELATED_LOCATION, _ID), "schemeID", "LOCATION")


# --- activities ----------------------------------------------------------------------------------

_ValueParser = Callable[[_Element, dict, "str | None"], Any]


def _dep(activity: _Element, groups: dict, occurrence: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "departureDatetimeUtc": occurrence,
        "departurePort": _port(activity),
        "anticipatedActivity": _text(activity, _REASON_CODE, "listID", "FA_REASON_DEPARTURE"),
    }
    _gear_onboard_into(value, activity, groups)
    zones = _activity_zones(groups.get(_RELATED_LOCATION, []))
    if _CATCH in groups:
        value["speciesOnboard"] = _catches(groups[_CATCH], zones)
    return value


def _far(activity: _Element, groups: dict, occurrence: str | None) -> dict[str, Any]:
    """One haul; a report's hauls are its FISHING_OPERATION activities."""
    haul: dict[str, Any] = {"farDatetimeUtc": occurrence}
    if _GEAR in groups:
        haul.update(_gear(_first(activity, _GEAR)))
    else:
        used = _path(activity, (_CATCH, _USED_GEAR))
        if used is not None:
            haul.update(_gear(used))
    zones = _activity_zones(groups.get(_RELATED_LOCATION, []))
    if _CATCH in groups:
        haul["catches"] = _catches(groups[_CATCH], zones)
    # Only a position of the activity itself, not of its gear shot/retrieval sub-activities.
    for location in groups.get(_RELATED_LOCATION, []):
        coordinate = next(location.iterchildren(_COORDINATE), None)
        if coordinate is not None:
            haul["latitude"], haul["longitude"] = _coordinate(coordinate)
            break
    return haul


def _dis(activity: _Element, groups: dict, occurrence: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {"discardDatetimeUtc": occurrence}
    zones = _activity_zones(groups.get(_RELATED_LOCATION, []))
    if _CATCH in groups:
        value["catches"] = _catches(groups[_CATCH], zones)
    return value


def _effort_zone(
    activity: _Element, groups: dict, occurrence: str | None, entered: bool
) -> dict[str, Any]:
    way, zone = ("Entry", "Entered") if entered else ("Exit", "Exited")
    # The reference reads the target species of an entry from TARGET_SPECIES_GROUP but that of an
    # exit from FAO_SPECIES; kept as is.
    target_list = "TARGET_SPECIES_GROUP" if entered else "FAO_SPECIES"
    value: dict[str, Any] = {
        f"effortZone{way}DatetimeUtc": occurrence,
        f"targetSpeciesOn{way}": _text(activity, _SPECIES_TARGET, "listID", target_list),
    }
    if _RELATED_LOCATION in groups:
        codes = _first_by_scheme(
            activity, ("FAO_AREA", "TERRITORY", "STAT_RECTANGLE", "EFFORT_ZONE")
        )
        value[f"faoZone{zone}"] = codes.get("FAO_AREA")
        value[f"economicZone{zone}"] = codes.get("TERRITORY")
        value[f"statisticalRectangle{zone}"] = codes.get("STAT_RECTANGLE")
        value[f"effortZone{zone}"] = codes.get("EFFORT_ZONE")
    position = _position(activity)
    if position is not None:
        value[f"latitude{zone}"], value[f"longitude{zone}"] = position
    if _CATCH in groups:
        value["speciesOnboard"] = _catches(groups[_CATCH], None)
    return value


def _coe(activity: _Element, groups: dict, occurrence: str | None) -> dict[str, Any]:
    return _effort_zone(activity, groups, occurrence, entered=True)


def _cox(activity: _Element, groups: dict, occurrence: str | None) -> dict[str, Any]:
    return _effort_zone(activity, groups, occurrence, entered=False)


def _pno(activity: _Element, groups: dict, occurrence: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "predictedArrivalDatetimeUtc": occurrence,
        "port": _port(activity),
        "purpose": _text(activity, _REASON_CODE),
        "tripStartDate": _path_text(activity, (_START, _DATETIME)),
    }
    zones = _activity_zones(groups.get(_RELATED_LOCATION, []))
    if _CATCH in groups:
        onboard: list[_Element] = []
        to_land: list[_Element] = []
        for catch in activity.iterdescendants(_CATCH):
            catch_types = [code.text for code in catch.iterchildren(_TYPE_CODE)]
            if "ONBOARD" in catch_types:
                onboard.append(catch)
            if "UNLOADED" in catch_types:
                to_land.append(catch)
        value["catchOnboard"] = _catches(onboard, zones)
        value["catchToLand"] = _catches(to_land, zones)
    position = _position(activity)
    if position is not None:
        value["latitude"], value["longitude"] = position
    return value


def _lan(activity: _Element, groups: dict, occurrence: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "landingDatetimeUtc": _path_text(activity, (_END, _DATETIME)),
        "port": _port(activity),
        "sender": _path_text(activity, (_CONTACT_PARTY, _ROLE_CODE), "listID", "FLUX_CONTACT_ROLE"),
    }
    zones = _activity_zones(groups.get(_RELATED_LOCATION, []))
    if _CATCH in groups:
        value["catchLanded"] = _catches(groups[_CATCH], zones, net_weight=True)
    return value


def _rtp(activity: _Element, groups: dict, occurrence: str | None) -> dict[str, Any]:
    value: dict[str, Any] = {
        "returnDatetimeUtc": occurrence,
        "port": _port(activity),
        "reasonOfReturn": _text(activity, _REASON_CODE, "listID", "FA_REASON_ARRIVAL"),
    }
    _gear_onboard_into(value, activity, groups)
    return value


# Log types absent from this table are stored without a value (value None), as the reference does.
VALUE_PARSERS: dict[str, _ValueParser] = {
    "DEP": _dep,
    "FAR": _far,
    "DIS": _dis,
    "RTP": _rtp,
    "LAN": _lan,
    "COE": _coe,
    "NOT-COE": _coe,
    "COX": _cox,
    "NOT-COX": _cox,
    "PNO": _pno,
}


def _activity(activity: _Element, report_type: str) -> tuple[str, datetime | None, Any]:
    """``(log_type, activity datetime, value)`` of one SpecifiedFishingActivity."""
    activity_type = _text(activity, _TYPE_CODE, "listID", "FLUX_FA_TYPE")
    if activity_type not in _ACTIVITY_TYPES:
        raise ValueError(f"unknown fishing activity type {activity_type!r}")
    log_type = LOG_TYPES.get((report_type, activity_type))  # type: ignore[arg-type]
    if log_type is None:
        raise ValueError(f"no log type for a {report_type} of {activity_type}")
    occurrence = _path_text(activity, (_OCCURRENCE, _DATETIME))
    parser = VALUE_PARSERS.get(log_type)
    value = None if parser is None else parser(activity, _grouped(activity), occurrence)
    stamp = occurrence
    if not stamp:  # landings and transhipments date their end instead
        end = _down(activity, (_PERIOD, _END, _DATETIME), None, None)
        stamp = None if end is None else end.text
    return log_type, instant(stamp, "activity DateTime", keep_fraction=True), value


def _vessel_into(report: Report, vessel: _Element) -> None:
    """Vessel identity of the reporting vessel (SpecifiedVesselTransportMeans)."""
    ids: dict[str, str | None] = {}
    flag_state = None
    flag_seen = False
    for el in vessel.iterdescendants():
        scheme = el.get("schemeID")
        if scheme is None:
            continue
        if scheme not in ids:
            ids[scheme] = el.text
        if not flag_seen and scheme == "TERRITORY" and el.tag == _ID:
            flag_state, flag_seen = el.text, True
    name = next(vessel.iterchildren(_NAME), None)
    report["cfr"] = ids.get("CFR")
    report["ircs"] = ids.get("IRCS")
    report["external_identification"] = ids.get("EXT_MARK")
    report["vessel_name"] = None if name is None else name.text
    report["flag_state"] = flag_state
    report["imo"] = ids.get("UVI")


def _report(document: _Element, operation: dict[str, Any]) -> Report:
    """One FAReportDocument: operation fields, report identity, vessel, log type and value."""
    purpose = _text_with(document, "listID", "FLUX_GP_PURPOSE")
    operation_type = PURPOSE_OPERATION_TYPES.get(purpose)  # type: ignore[arg-type]
    if operation_type is None:
        raise ValueError(f"unknown FLUX_GP_PURPOSE code {purpose!r}")
    report: Report = {
        "activity_datetime_utc": None,
        **operation,
        "operation_type": operation_type,
        "report_id": _text(document, _ID, "schemeID", "UUID"),
        "report_datetime_utc": instant(
            _path_text(document, (_CREATION, _DATETIME)), "report CreationDateTime", False
        ),
        "trip_number": _path_text(document, (_TRIP, _ID), "schemeID", "EU_TRIP_ID"),
        "referenced_report_id": _text(document, _REFERENCED_ID, "schemeID", "UUID"),
    }
    activities: list[_Element] = []
    vessel = None
    for child in document:
        if child.tag == _ACTIVITY:
            activities.append(child)
        elif child.tag == _VESSEL and vessel is None:
            vessel = child
    if vessel is not None:
        _vessel_into(report, vessel)
    report_type = _text(document, _TYPE_CODE, "listID", "FLUX_FA_REPORT_TYPE")
    if report_type not in _REPORT_TYPES:
        raise ValueError(f"unknown FLUX_FA_REPORT_TYPE {report_type!r}")
    if activities:
        parsed = [_activity(activity, report_type) for activity in activities]  # type: ignore[arg-type]
        log_type = parsed[0][0]
        if any(other[0] != log_type for other in parsed):
            raise ValueError("a FAReportDocument holds activities of different types")
        if log_type == "FAR":
            value: Any = {"hauls": [haul for _, _, haul in parsed]}
        elif len(parsed) == 1:
            value = parsed[0][2]
        else:
            raise ValueError(f"a FAReportDocument holds {len(parsed)} {log_type} activities")
        stamps = [stamp for _, stamp, _ in parsed if stamp is not None]
        report["activity_datetime_utc"] = min(stamps) if stamps else None
        report["log_type"] = log_type
        report["value"] = value
    return report


def operation_number(root: _Element) -> str | None:
    """The message's operation number (FLUXReportDocument/ID[@schemeID="UUID"])."""
    return _path_text(root, (_FLUX_REPORT_DOCUMENT, _ID), "schemeID", "UUID")


def parse_report_message(root: _Element) -> tuple[str, dict[str, Any], list[Report]]:
    """``(operation_number, metadata, reports)`` of a FLUXFAReportMessage element."""
    if root.tag != ROOT_TAG:
        raise ValueError(f"root element is {root.tag!r}, not FLUXFAReportMessage")
    number_ = operation_number(root)
    if not number_:
        raise ValueError("missing operation number (FLUXReportDocument/ID[@schemeID='UUID'])")
    operation = {
        "operation_number": number_,
        "operation_datetime_utc": instant(
            _path_text(root, (_FLUX_REPORT_DOCUMENT, _CREATION, _DATETIME)),
            "FLUXReportDocument CreationDateTime",
            keep_fraction=False,
        ),
    }
    reports = [_report(document, operation) for document in root.iterchildren(_FA_REPORT_DOCUMENT)]
    return number_, {"operation_number": number_}, reports
