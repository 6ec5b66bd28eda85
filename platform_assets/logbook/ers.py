"""ERS3 logbook messages (``OPS`` envelope) turned into plain dicts.

The output reproduces the Monitorfish pipeline's ERS parser (MTES-MCT/monitorfish): same metadata
keys, same report keys, same ``value`` shapes (camelCase keys, datetimes inside ``value`` as
``...Z`` strings, keys present only when the element exists). Differences are deliberate and
stricter: a number or date that does not parse raises instead of becoming ``None``.

Element names are matched without their namespace, as the reference does, through a memo of
tag -> local name, so the hot loops do one dict lookup per element and no string work.
Invalid input raises ``ValueError``; :mod:`platform_assets.logbook.parse` wraps it into
``LogbookParsingError`` with the message's identity.

This module is the reference; ``_ers_fast.pyx`` is its compiled twin, which parsing uses when it
was built (four times faster on this walk). A change here goes there too, function for function:
``tests/unit/test_logbook_ers_compiled.py`` fails while the two disagree on any tree.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from lxml.etree import _Element

# Full tag -> local name, filled on first sight of each tag (bounded, so that random input cannot
# grow it without limit): the hot loops then do one dict lookup per element and no string work.
_NAMES: dict[Any, str] = {}
_NAMES_LIMIT = 4096

Report = dict[str, Any]


def _name(tag: Any) -> str:
    """Local name of ``tag``; '' for comments, processing instructions and entities."""
    name = _NAMES.get(tag)
    if name is not None:
        return name
    if not isinstance(tag, str):
        return ""
    name = tag.rpartition("}")[2]
    if len(_NAMES) < _NAMES_LIMIT:
        _NAMES[tag] = name
    return name


# --- scalar fields -------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def when(date: str | None, time: str | None = None) -> tuple[datetime | None, str | None]:
    """``(aware UTC datetime, 'YYYY-MM-DDTHH:MM:SSZ')`` of an ERS date and optional time.

    Seconds are dropped, as the reference does; no date gives ``(None, None)``. Cached because a
    message repeats its timestamps (OD/OT is usually RD/RT, log entries share a day).
    """
    if not date:
        return None, None
    if len(date) != 10 or date[4] != "-" or date[7] != "-":
        raise ValueError(f"date {date!r} is not YYYY-MM-DD")
    if time:
        if len(time) == 8 and time[5] == ":":
            time = time[:5]
        if len(time) != 5 or time[2] != ":":
            raise ValueError(f"time {time!r} is not HH:MM")
        text = f"{date}T{time}"
    else:
        text = f"{date}T00:00"
    try:
        # The shape is checked above; fromisoformat (C) checks the digits and the calendar.
        naive = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date {date!r} time {time!r} is not a valid date and time") from None
    return naive.replace(tzinfo=UTC), f"{text}:00Z"


def number(raw: str | None, field: str) -> float | None:
    """Float of an attribute; missing, empty or blank is ``None``, anything else unparsable raises.

    NaN and infinities raise too: they are no measure and JSON/PostgreSQL cannot store them.
    """
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        if raw.isspace():
            return None
        raise ValueError(f"{field} {raw!r} is not a number") from None
    if value - value:  # NaN or infinity: inf - inf and nan - nan are NaN, which is truthy
        raise ValueError(f"{field} {raw!r} is not a finite number")
    return value


def integer(raw: str | None, field: str) -> int | None:
    """Int of an attribute; missing, empty or blank is ``None``, anything else unparsable raises."""
    if not raw or raw.isspace():
        return None
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{field} {raw!r} is not an integer") from None


# --- childless elements --------------------------------------------------------------------------
# These run once per catch line, dozens of times per message. Attributes are read with one ``get``
# each (the cheapest lxml accessor), children through a slice (built in C, several times faster
# than lxml's child iterator), and result dicts are built as one literal so they never resize.


def _fao_zone(get: Callable[[str], str | None]) -> str:
    """FAO zone of a RAS: the non-empty area levels joined with dots ('27.7.d'); '' if none."""
    area, sub_area, division = get("FA"), get("SA"), get("ID")
    sub_division, unit = get("SD"), get("UI")
    if sub_division is None and unit is None and area and sub_area and division:
        return f"{area}.{sub_area}.{division}"  # the usual case, without building a tuple
    return ".".join(filter(None, (area, sub_area, division, sub_division, unit)))


def _area(ras: _Element) -> tuple[str, str | None, str | None, str | None]:
    """FAO zone, economic zone, statistical rectangle and effort zone of a RAS element."""
    get = ras.get
    return _fao_zone(get), get("EZ"), get("SR"), get("FE")


def _spe(spe: _Element, to_land: bool = False) -> dict[str, Any]:
    """One catch line, with its area (RAS) and processing (PRO) fields when present.

    ``to_land`` reads the weight and count to land (PNO WL/FL) instead of those on board.
    """
    get = spe.get
    species = get("SN")
    weight = number(get("WL" if to_land else "WT"), "SPE/@WT")
    count = get("FL" if to_land else "NF")
    if count is not None:
        count = number(count, "SPE/@NF")
    ras = pro = None
    for child in spe[:]:
        name = _NAMES.get(child.tag) or _name(child.tag)
        if name == "RAS":
            if ras is not None:
                raise ValueError("SPE holds more than one RAS")
            ras = child
        elif name == "PRO":
            if pro is not None:
                raise ValueError("SPE holds more than one PRO")
            pro = child
    # One literal per shape: the reference adds area and processing keys only when present.
    if ras is not None:
        get = ras.get
        fao_zone = _fao_zone(get)
        if pro is None:
            return {
                "species": species,
                "weight": weight,
                "nbFish": count,
                "faoZone": fao_zone,
                "economicZone": get("EZ"),
                "statisticalRectangle": get("SR"),
                "effortZone": get("FE"),
            }
        pget = pro.get
        return {
            "species": species,
            "weight": weight,
            "nbFish": count,
            "faoZone": fao_zone,
            "economicZone": get("EZ"),
            "statisticalRectangle": get("SR"),
            "effortZone": get("FE"),
            "presentation": pget("PR"),
            "packaging": pget("TY"),
            "freshness": pget("FF"),
            "preservationState": pget("PS"),
            "conversionFactor": number(pget("CF"), "PRO/@CF"),
        }
    if pro is None:
        return {"species": species, "weight": weight, "nbFish": count}
    pget = pro.get
    return {
        "species": species,
        "weight": weight,
        "nbFish": count,
        "presentation": pget("PR"),
        "packaging": pget("TY"),
        "freshness": pget("FF"),
        "preservationState": pget("PS"),
        "conversionFactor": number(pget("CF"), "PRO/@CF"),
    }


def _gea(gea: _Element) -> dict[str, Any]:
    """Gear: type, mesh (a number) and dimensions (kept as text, e.g. '16.0;16.0')."""
    get = gea.get
    return {"gear": get("GE"), "mesh": number(get("ME"), "GEA/@ME"), "dimensions": get("GC")}


def _pos(pos: _Element) -> tuple[float | None, float | None]:
    """Latitude and longitude of a POS element."""
    get = pos.get
    return number(get("LT"), "POS/@LT"), number(get("LG"), "POS/@LG")


def _edci(edci: _Element) -> dict[str, Any]:
    """A catch of a protected species (ECPS/EDCI), with its single SPE merged in."""
    get = edci.get
    data: dict[str, Any] = {
        "sex": get("SE"),
        "healthState": get("HE"),
        "careMinutes": integer(get("CA"), "EDCI/@CA"),
        "ring": get("RI"),
        "fate": get("FT"),
        "comment": get("CO"),
    }
    spe = None
    for child in edci[:]:
        if (_NAMES.get(child.tag) or _name(child.tag)) == "SPE":
            if spe is not None:
                raise ValueError("EDCI holds more than one SPE")
            spe = child
    if spe is not None:
        data.update(_spe(spe))
    return data


# Child kinds a log entry may hold, each collected into a list by ``_parts``.
_PART_INDEX = {"SPE": 0, "GEA": 1, "RAS": 2, "POS": 3, "EDCI": 4, "COE": 5, "COX": 6}


def _parts(el: _Element) -> tuple[list[_Element], ...]:
    """Children of a log entry by kind: (SPE, GEA, RAS, POS, EDCI, COE, COX) lists."""
    parts: tuple[list[_Element], ...] = ([], [], [], [], [], [], [])
    for child in el[:]:
        index = _PART_INDEX.get(_NAMES.get(child.tag) or _name(child.tag))
        if index is not None:
            parts[index].append(child)
    return parts


def _one(found: list[_Element], name: str, parent: str) -> _Element | None:
    """The only element of ``found``, or None; the format (and the reference) allow one."""
    if not found:
        return None
    if len(found) != 1:
        raise ValueError(f"{parent} holds more than one {name}")
    return found[0]


# --- log entries ---------------------------------------------------------------------------------


def _dep(el: _Element) -> Report:
    """Departure."""
    get = el.get
    activity, stamp = when(get("DA"), get("TI"))
    value: dict[str, Any] = {
        "departureDatetimeUtc": stamp,
        "departurePort": get("PO"),
        "anticipatedActivity": get("AA"),
    }
    spes, geas = _parts(el)[:2]
    if geas:
        value["gearOnboard"] = [_gea(gea) for gea in geas]
    if spes:
        value["speciesOnboard"] = [_spe(spe) for spe in spes]
    return {"activity_datetime_utc": activity, "log_type": "DEP", "value": value}


def _far(el: _Element) -> Report:
    """Fishing activity report: one haul per FAR element."""
    activity, stamp = when(el.get("DA"), el.get("TI"))
    haul: dict[str, Any] = {"farDatetimeUtc": stamp}
    spes, geas, _, poss = _parts(el)[:4]
    gea = _one(geas, "GEA", "FAR")
    if gea is not None:
        haul.update(_gea(gea))
    if spes:
        haul["catches"] = [_spe(spe) for spe in spes]
    pos = _one(poss, "POS", "FAR")
    if pos is not None:
        haul["latitude"], haul["longitude"] = _pos(pos)
    return {"activity_datetime_utc": activity, "log_type": "FAR", "value": {"hauls": [haul]}}


def _ecps(el: _Element) -> Report:
    """Catch of protected species (national extension, nested in ELOG)."""
    activity, stamp = when(el.get("DA"), el.get("TI"))
    value: dict[str, Any] = {"cpsDatetimeUtc": stamp}
    _, geas, _, poss, edcis = _parts(el)[:5]
    gea = _one(geas, "GEA", "ECPS")
    if gea is not None:
        value.update(_gea(gea))
    if edcis:
        value["catches"] = [_edci(edci) for edci in edcis]
    pos = _one(poss, "POS", "ECPS")
    if pos is not None:
        value["latitude"], value["longitude"] = _pos(pos)
    return {"activity_datetime_utc": activity, "log_type": "CPS", "value": value}


def _dis(el: _Element) -> Report:
    """Discard."""
    activity, stamp = when(el.get("DA"), el.get("TI"))
    value: dict[str, Any] = {"discardDatetimeUtc": stamp}
    spes = _parts(el)[0]
    if spes:
        value["catches"] = [_spe(spe) for spe in spes]
    return {"activity_datetime_utc": activity, "log_type": "DIS", "value": value}


def _effort_zone(el: _Element, log_type: str, entered: bool) -> Report:
    """Entry into (COE) or exit from (COX) an effort zone."""
    way, zone = ("Entry", "Entered") if entered else ("Exit", "Exited")
    activity, stamp = when(el.get("DA"), el.get("TI"))
    value: dict[str, Any] = {
        f"effortZone{way}DatetimeUtc": stamp,
        f"targetSpeciesOn{way}": el.get("TS"),
    }
    spes, _, rass, poss = _parts(el)[:4]
    ras = _one(rass, "RAS", log_type)
    if ras is not None:
        (
            value[f"faoZone{zone}"],
            value[f"economicZone{zone}"],
            value[f"statisticalRectangle{zone}"],
            value[f"effortZone{zone}"],
        ) = _area(ras)
    pos = _one(poss, "POS", log_type)
    if pos is not None:
        value[f"latitude{zone}"], value[f"longitude{zone}"] = _pos(pos)
    if spes:
        value["speciesOnboard"] = [_spe(spe) for spe in spes]
    return {"activity_datetime_utc": activity, "log_type": log_type, "value": value}


def _coe(el: _Element) -> Report:
    """Entry into an effort zone."""
    return _effort_zone(el, "COE", entered=True)


def _cox(el: _Element) -> Report:
    """Exit from an effort zone."""
    return _effort_zone(el, "COX", entered=False)


def _cro(el: _Element) -> Report:
    """Crossing: a COE and a COX merged; its time is the exit's (as in the reference)."""
    coes, coxs = _parts(el)[5:7]
    value: dict[str, Any] = {}
    activity = None
    coe = _one(coes, "COE", "CRO")
    if coe is not None:
        value.update(_coe(coe)["value"])
    cox = _one(coxs, "COX", "CRO")
    if cox is not None:
        exit_ = _cox(cox)
        activity = exit_["activity_datetime_utc"]
        value.update(exit_["value"])
    return {"activity_datetime_utc": activity, "log_type": "CRO", "value": value}


def _pno(el: _Element) -> Report:
    """Prior notification of arrival; its activity time is the predicted arrival."""
    get = el.get
    activity, arrival = when(get("PD"), get("PT"))
    value: dict[str, Any] = {
        "predictedArrivalDatetimeUtc": arrival,
        "predictedLandingDatetimeUtc": when(get("DA"), get("TI"))[1],
        "port": get("PO"),
        "purpose": get("PC"),
        "tripStartDate": when(get("DS"))[1],
    }
    spes, _, rass, poss = _parts(el)[:4]
    ras = _one(rass, "RAS", "PNO")
    if ras is not None:
        (
            value["faoZone"],
            value["economicZone"],
            value["statisticalRectangle"],
            value["effortZone"],
        ) = _area(ras)
    if spes:
        value["catchOnboard"] = [_spe(spe) for spe in spes]
        value["catchToLand"] = [_spe(spe, to_land=True) for spe in spes]
    pos = _one(poss, "POS", "PNO")
    if pos is not None:
        value["latitude"], value["longitude"] = _pos(pos)
    return {"activity_datetime_utc": activity, "log_type": "PNO", "value": value}


def _lan(el: _Element) -> Report:
    """Landing declaration."""
    get = el.get
    activity, stamp = when(get("DA"), get("TI"))
    value: dict[str, Any] = {"landingDatetimeUtc": stamp, "port": get("PO"), "sender": get("TS")}
    spes = _parts(el)[0]
    if spes:
        value["catchLanded"] = [_spe(spe) for spe in spes]
    return {"activity_datetime_utc": activity, "log_type": "LAN", "value": value}


def _eof(el: _Element) -> Report:
    """End of fishing."""
    activity, stamp = when(el.get("DA"), el.get("TI"))
    return {
        "activity_datetime_utc": activity,
        "log_type": "EOF",
        "value": {"endOfFishingDatetimeUtc": stamp},
    }


def _rtp(el: _Element) -> Report:
    """Return to port."""
    get = el.get
    activity, stamp = when(get("DA"), get("TI"))
    value: dict[str, Any] = {
        "returnDatetimeUtc": stamp,
        "port": get("PO"),
        "reasonOfReturn": get("RE"),
    }
    geas = _parts(el)[1]
    if geas:
        value["gearOnboard"] = [_gea(gea) for gea in geas]
    return {"activity_datetime_utc": activity, "log_type": "RTP", "value": value}


def _type_only(el: _Element) -> Report:
    """Log types the reference stores without content (relocation, transhipment, ...)."""
    return {"log_type": _name(el.tag)}


LOG_PARSERS: dict[str, Callable[[_Element], Report]] = {
    "DEP": _dep,
    "FAR": _far,
    "ECPS": _ecps,
    "DIS": _dis,
    "EOF": _eof,
    "PNO": _pno,
    "RTP": _rtp,
    "LAN": _lan,
    "COE": _coe,
    "COX": _cox,
    "CRO": _cro,
    "RLC": _type_only,
    "TRA": _type_only,
    "TRZ": _type_only,
    "INS": _type_only,
    "PNT": _type_only,
}


# --- envelope ------------------------------------------------------------------------------------


def _only_child(el: _Element, name: str | None = None) -> _Element:
    """The single element child of an envelope level, called ``name`` when given."""
    children = el[:]
    if len(children) != 1:
        raise ValueError(f"{_name(el.tag)} must hold exactly one element, found {len(children)}")
    child = children[0]
    if name is not None and (_NAMES.get(child.tag) or _name(child.tag)) != name:
        raise ValueError(f"{_name(el.tag)} must hold {name}, found {_name(child.tag)!r}")
    return child


def _log_entries(log: _Element, metadata: dict[str, Any]) -> list[Report]:
    """One report per log entry of LOG; the trip number (first ELOG) goes into ``metadata``."""
    reports: list[Report] = []
    elogs: list[_Element] = []
    for child in log[:]:
        name = _NAMES.get(child.tag) or _name(child.tag)
        if name == "ELOG":
            elogs.append(child)
        elif name:
            parser = LOG_PARSERS.get(name)
            if parser is None:
                raise ValueError(f"unsupported log entry {name!r}")
            reports.append(parser(child))
    if elogs:
        # Protected-species catches (ECPS) nested in any ELOG are log entries of their own,
        # after the others (as in the reference).
        metadata["trip_number"] = elogs[0].get("TN")
        for elog in elogs:
            for child in elog[:]:
                if (_NAMES.get(child.tag) or _name(child.tag)) == "ECPS":
                    reports.append(_ecps(child))
    return reports


def operation_number(ops: _Element) -> str | None:
    """The operation number (OPS/@ON), for error messages."""
    return ops.get("ON")


def parse_ops(ops: _Element) -> tuple[str, dict[str, Any], list[Report]]:
    """``(operation_number, metadata, reports)`` of an OPS element, shaped like the reference.

    DAT and COR carry one report per log entry; DEL carries one report ``{"value": None}`` and
    RET one ``{"value": {"returnStatus": ...}}``; QUE and RSP carry none.
    """
    get = ops.get
    number_ = get("ON")
    if not number_:
        raise ValueError("missing operation number (OPS/@ON)")
    operation = _only_child(ops)
    operation_type = _NAMES.get(operation.tag) or _name(operation.tag)
    metadata: dict[str, Any]
    if operation_type == "DAT" or operation_type == "COR":
        ers = _only_child(operation, "ERS")
        log = _only_child(ers, "LOG")
        ers_get, log_get = ers.get, log.get
        metadata = {  # one literal: the dict is built at its final size
            "operation_number": number_,
            "operation_country": get("FR"),
            "operation_datetime_utc": when(get("OD"), get("OT"))[0],
            "software": get("EVL"),
            "is_test_message": get("TS") == "1",
            "operation_type": operation_type,
            "report_id": ers_get("RN"),
            "report_datetime_utc": when(ers_get("RD"), ers_get("RT"))[0],
            "cfr": log_get("IR"),
            "ircs": log_get("RC"),
            "external_identification": log_get("XR"),
            "vessel_name": log_get("NA"),
            "flag_state": log_get("FS"),
            "imo": log_get("IM"),
        }
        if operation_type == "COR":
            metadata["referenced_report_id"] = operation.get("RN")
        return number_, metadata, _log_entries(log, metadata)
    metadata = {
        "operation_number": number_,
        "operation_country": get("FR"),
        "operation_datetime_utc": when(get("OD"), get("OT"))[0],
        "software": get("EVL"),
        "is_test_message": get("TS") == "1",
        "operation_type": operation_type,
    }
    reports: list[Report]
    if operation_type == "DEL":
        metadata["referenced_report_id"] = operation.get("RN")
        reports = [{"value": None}]
    elif operation_type == "RET":
        # RET acknowledges a whole operation: it references an operation number, not a report.
        metadata["referenced_report_id"] = operation.get("ON")
        value: dict[str, Any] = {"returnStatus": operation.get("RS")}
        rejection_cause = operation.get("RE")
        if rejection_cause:
            value["rejectionCause"] = rejection_cause
        reports = [{"value": value}]
    elif operation_type == "QUE" or operation_type == "RSP":
        reports = []
    else:
        raise ValueError(f"unsupported operation {operation_type!r}")
    return number_, metadata, reports
