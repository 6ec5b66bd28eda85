# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Compiled twin of :func:`platform_assets.logbook.ers.parse_ops`: same output, same errors.

Why it exists: on ERS messages the pure-Python walk costs as much as lxml's parse itself, and two
thirds of it is lxml's per-attribute API (each ``get`` encodes the key, copies the value, makes a
proxy object...). Here the tree lxml built is read through libxml2's own structures, which lxml
publishes for compiled extensions (``lxml.get_include()``): one pointer walk per attribute, no
proxies.

``ers.py`` stays the reference: this module reproduces it function by function, in the same order
(so that a message with two faults reports the same one) and with the same messages; tests compare
the two on the corpus and on generated trees. Anything this module does not read the plain way
(a document with a DTD, whose attributes may have defaults; an attribute holding entity
references) is handed to ``ers.parse_ops`` whole.
"""

from libc.math cimport isfinite
from libc.string cimport strcmp
from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_FromString

cimport lxml.includes.etreepublic as cetree
from lxml.includes.tree cimport (
    XML_CDATA_SECTION_NODE,
    XML_ELEMENT_NODE,
    XML_TEXT_NODE,
    xmlAttr,
    xmlNode,
)

from platform_assets.logbook import ers as _ers

cetree.import_lxml__etree()

cdef object _when = _ers.when
cdef object _number_py = _ers.number
cdef object _integer = _ers.integer
cdef object _parse_ops_py = _ers.parse_ops


class _Fallback(Exception):
    """Raised inside this module when a message needs the reference implementation."""


# --- tree access ---------------------------------------------------------------------------------


cdef inline bint _is_child(xmlNode* c_node) noexcept:
    """What lxml lists as a child (``el[:]``): elements, comments, PIs and entity references."""
    return cetree._isElement(c_node)


cdef inline xmlNode* _first(xmlNode* c_node) noexcept:
    """The first child lxml lists, or NULL."""
    c_node = c_node.children
    while c_node is not NULL and not _is_child(c_node):
        c_node = c_node.next
    return c_node


cdef inline xmlNode* _next(xmlNode* c_node) noexcept:
    """The next sibling lxml lists, or NULL."""
    c_node = c_node.next
    while c_node is not NULL and not _is_child(c_node):
        c_node = c_node.next
    return c_node


cdef inline bint _named(xmlNode* c_node, const char* name) noexcept:
    """Whether ``c_node`` is an element with local name ``name`` (any namespace, as ers.py)."""
    return c_node.type == XML_ELEMENT_NODE and strcmp(<const char*>c_node.name, name) == 0


cdef str _local_name(xmlNode* c_node):
    """``ers._name(el.tag)``: the local name of an element, '' for other children."""
    if c_node.type != XML_ELEMENT_NODE:
        return ""
    return (<const char*>c_node.name).decode("utf-8")


cdef object _get(xmlNode* c_node, const char* name):
    """``el.get(name)``: the value of the un-namespaced attribute ``name``, or None."""
    cdef xmlAttr* attr = c_node.properties
    cdef xmlNode* text
    while attr is not NULL:
        if attr.ns is NULL and strcmp(<const char*>attr.name, name) == 0:
            text = attr.children
            if text is NULL or text.content is NULL:
                return ""
            if text.next is NULL and (
                text.type == XML_TEXT_NODE or text.type == XML_CDATA_SECTION_NODE
            ):
                return (<const char*>text.content).decode("utf-8")
            raise _Fallback()  # entity references inside the value: let lxml resolve them
        attr = attr.next
    return None


cdef xmlNode* _one(xmlNode* c_node, const char* name, str parent) except? NULL:
    """The only child element called ``name``, or NULL; a second one raises (``ers._one``)."""
    cdef xmlNode* found = NULL
    cdef xmlNode* child = _first(c_node)
    while child is not NULL:
        if _named(child, name):
            if found is not NULL:
                raise ValueError(f"{parent} holds more than one {name.decode()}")
            found = child
        child = _next(child)
    return found


# --- scalar fields -------------------------------------------------------------------------------


cdef object _number(object raw, str field):
    """``ers.number``: the float of a plain decimal here, anything unusual decided by ers.py."""
    if raw is None or not raw:
        return None
    try:
        value = PyFloat_FromString(raw)
    except ValueError:
        return _number_py(raw, field)  # blank -> None, else its error
    if not isfinite(PyFloat_AS_DOUBLE(value)):
        return _number_py(raw, field)  # raises the 'not a finite number' error
    return value


# --- childless elements --------------------------------------------------------------------------


cdef str _fao_zone(xmlNode* ras):
    """``ers._fao_zone``: the non-empty area levels joined with dots."""
    area, sub_area, division = _get(ras, b"FA"), _get(ras, b"SA"), _get(ras, b"ID")
    sub_division, unit = _get(ras, b"SD"), _get(ras, b"UI")
    if sub_division is None and unit is None and area and sub_area and division:
        return f"{area}.{sub_area}.{division}"
    return ".".join(filter(None, (area, sub_area, division, sub_division, unit)))


cdef tuple _area(xmlNode* ras):
    return _fao_zone(ras), _get(ras, b"EZ"), _get(ras, b"SR"), _get(ras, b"FE")


cdef dict _spe(xmlNode* spe, bint to_land=False):
    """``ers._spe``: one catch line with its area and processing fields when present."""
    species = _get(spe, b"SN")
    weight = _number(_get(spe, b"WL" if to_land else b"WT"), "SPE/@WT")
    count = _get(spe, b"FL" if to_land else b"NF")
    if count is not None:
        count = _number(count, "SPE/@NF")
    cdef xmlNode* ras = NULL
    cdef xmlNode* pro = NULL
    cdef xmlNode* child = _first(spe)
    while child is not NULL:
        if _named(child, b"RAS"):
            if ras is not NULL:
                raise ValueError("SPE holds more than one RAS")
            ras = child
        elif _named(child, b"PRO"):
            if pro is not NULL:
                raise ValueError("SPE holds more than one PRO")
            pro = child
        child = _next(child)
    if ras is not NULL:
        fao_zone = _fao_zone(ras)
        if pro is NULL:
            return {
                "species": species,
                "weight": weight,
                "nbFish": count,
                "faoZone": fao_zone,
                "economicZone": _get(ras, b"EZ"),
                "statisticalRectangle": _get(ras, b"SR"),
                "effortZone": _get(ras, b"FE"),
            }
        return {
            "species": species,
            "weight": weight,
            "nbFish": count,
            "faoZone": fao_zone,
            "economicZone": _get(ras, b"EZ"),
            "statisticalRectangle": _get(ras, b"SR"),
            "effortZone": _get(ras, b"FE"),
            "presentation": _get(pro, b"PR"),
            "packaging": _get(pro, b"TY"),
            "freshness": _get(pro, b"FF"),
            "preservationState": _get(pro, b"PS"),
            "conversionFactor": _number(_get(pro, b"CF"), "PRO/@CF"),
        }
    if pro is NULL:
        return {"species": species, "weight": weight, "nbFish": count}
    return {
        "species": species,
        "weight": weight,
        "nbFish": count,
        "presentation": _get(pro, b"PR"),
        "packaging": _get(pro, b"TY"),
        "freshness": _get(pro, b"FF"),
        "preservationState": _get(pro, b"PS"),
        "conversionFactor": _number(_get(pro, b"CF"), "PRO/@CF"),
    }


cdef list _spes(xmlNode* c_node, bint to_land=False):
    """``[_spe(spe) for spe in spes]`` over the SPE children, in document order."""
    cdef list result = []
    cdef xmlNode* child = _first(c_node)
    while child is not NULL:
        if _named(child, b"SPE"):
            result.append(_spe(child, to_land))
        child = _next(child)
    return result


cdef dict _gea(xmlNode* gea):
    return {
        "gear": _get(gea, b"GE"),
        "mesh": _number(_get(gea, b"ME"), "GEA/@ME"),
        "dimensions": _get(gea, b"GC"),
    }


cdef list _geas(xmlNode* c_node):
    cdef list result = []
    cdef xmlNode* child = _first(c_node)
    while child is not NULL:
        if _named(child, b"GEA"):
            result.append(_gea(child))
        child = _next(child)
    return result


cdef tuple _pos(xmlNode* pos):
    return _number(_get(pos, b"LT"), "POS/@LT"), _number(_get(pos, b"LG"), "POS/@LG")


cdef dict _edci(xmlNode* edci):
    """``ers._edci``: a protected-species catch with its single SPE merged in."""
    cdef dict data = {
        "sex": _get(edci, b"SE"),
        "healthState": _get(edci, b"HE"),
        "careMinutes": _integer(_get(edci, b"CA"), "EDCI/@CA"),
        "ring": _get(edci, b"RI"),
        "fate": _get(edci, b"FT"),
        "comment": _get(edci, b"CO"),
    }
    cdef xmlNode* spe = NULL
    cdef xmlNode* child = _first(edci)
    while child is not NULL:
        if _named(child, b"SPE"):
            if spe is not NULL:
                raise ValueError("EDCI holds more than one SPE")
            spe = child
        child = _next(child)
    if spe is not NULL:
        data.update(_spe(spe))
    return data


# --- log entries (one per ers.py function, same order of reads and checks) -----------------------


cdef dict _dep(xmlNode* el):
    activity, stamp = _when(_get(el, b"DA"), _get(el, b"TI"))
    cdef dict value = {
        "departureDatetimeUtc": stamp,
        "departurePort": _get(el, b"PO"),
        "anticipatedActivity": _get(el, b"AA"),
    }
    gears = _geas(el)
    if gears:
        value["gearOnboard"] = gears
    species = _spes(el)
    if species:
        value["speciesOnboard"] = species
    return {"activity_datetime_utc": activity, "log_type": "DEP", "value": value}


cdef dict _far(xmlNode* el):
    activity, stamp = _when(_get(el, b"DA"), _get(el, b"TI"))
    cdef dict haul = {"farDatetimeUtc": stamp}
    cdef xmlNode* gea = _one(el, b"GEA", "FAR")
    if gea is not NULL:
        haul.update(_gea(gea))
    catches = _spes(el)
    if catches:
        haul["catches"] = catches
    cdef xmlNode* pos = _one(el, b"POS", "FAR")
    if pos is not NULL:
        haul["latitude"], haul["longitude"] = _pos(pos)
    return {"activity_datetime_utc": activity, "log_type": "FAR", "value": {"hauls": [haul]}}


cdef dict _ecps(xmlNode* el):
    activity, stamp = _when(_get(el, b"DA"), _get(el, b"TI"))
    cdef dict value = {"cpsDatetimeUtc": stamp}
    cdef xmlNode* gea = _one(el, b"GEA", "ECPS")
    if gea is not NULL:
        value.update(_gea(gea))
    cdef list catches = []
    cdef xmlNode* child = _first(el)
    while child is not NULL:
        if _named(child, b"EDCI"):
            catches.append(_edci(child))
        child = _next(child)
    if catches:
        value["catches"] = catches
    cdef xmlNode* pos = _one(el, b"POS", "ECPS")
    if pos is not NULL:
        value["latitude"], value["longitude"] = _pos(pos)
    return {"activity_datetime_utc": activity, "log_type": "CPS", "value": value}


cdef dict _dis(xmlNode* el):
    activity, stamp = _when(_get(el, b"DA"), _get(el, b"TI"))
    cdef dict value = {"discardDatetimeUtc": stamp}
    catches = _spes(el)
    if catches:
        value["catches"] = catches
    return {"activity_datetime_utc": activity, "log_type": "DIS", "value": value}


cdef dict _effort_zone(xmlNode* el, str log_type, bint entered):
    way, zone = ("Entry", "Entered") if entered else ("Exit", "Exited")
    activity, stamp = _when(_get(el, b"DA"), _get(el, b"TI"))
    cdef dict value = {
        f"effortZone{way}DatetimeUtc": stamp,
        f"targetSpeciesOn{way}": _get(el, b"TS"),
    }
    cdef xmlNode* ras = _one(el, b"RAS", log_type)
    if ras is not NULL:
        (
            value[f"faoZone{zone}"],
            value[f"economicZone{zone}"],
            value[f"statisticalRectangle{zone}"],
            value[f"effortZone{zone}"],
        ) = _area(ras)
    cdef xmlNode* pos = _one(el, b"POS", log_type)
    if pos is not NULL:
        value[f"latitude{zone}"], value[f"longitude{zone}"] = _pos(pos)
    species = _spes(el)
    if species:
        value["speciesOnboard"] = species
    return {"activity_datetime_utc": activity, "log_type": log_type, "value": value}


cdef dict _cro(xmlNode* el):
    cdef dict value = {}
    activity = None
    cdef xmlNode* coe = _one(el, b"COE", "CRO")
    if coe is not NULL:
        value.update(_effort_zone(coe, "COE", True)["value"])
    cdef xmlNode* cox = _one(el, b"COX", "CRO")
    if cox is not NULL:
        exit_ = _effort_zone(cox, "COX", False)
        activity = exit_["activity_datetime_utc"]
        value.update(exit_["value"])
    return {"activity_datetime_utc": activity, "log_type": "CRO", "value": value}


cdef dict _pno(xmlNode* el):
    activity, arrival = _when(_get(el, b"PD"), _get(el, b"PT"))
    cdef dict value = {
        "predictedArrivalDatetimeUtc": arrival,
        "predictedLandingDatetimeUtc": _when(_get(el, b"DA"), _get(el, b"TI"))[1],
        "port": _get(el, b"PO"),
        "purpose": _get(el, b"PC"),
        "tripStartDate": _when(_get(el, b"DS"))[1],
    }
    cdef xmlNode* ras = _one(el, b"RAS", "PNO")
    if ras is not NULL:
        (
            value["faoZone"],
            value["economicZone"],
            value["statisticalRectangle"],
            value["effortZone"],
        ) = _area(ras)
    on_board = _spes(el)
    if on_board:
        value["catchOnboard"] = on_board
        value["catchToLand"] = _spes(el, True)
    cdef xmlNode* pos = _one(el, b"POS", "PNO")
    if pos is not NULL:
        value["latitude"], value["longitude"] = _pos(pos)
    return {"activity_datetime_utc": activity, "log_type": "PNO", "value": value}


cdef dict _lan(xmlNode* el):
    activity, stamp = _when(_get(el, b"DA"), _get(el, b"TI"))
    cdef dict value = {
        "landingDatetimeUtc": stamp,
        "port": _get(el, b"PO"),
        "sender": _get(el, b"TS"),
    }
    landed = _spes(el)
    if landed:
        value["catchLanded"] = landed
    return {"activity_datetime_utc": activity, "log_type": "LAN", "value": value}


cdef dict _eof(xmlNode* el):
    activity, stamp = _when(_get(el, b"DA"), _get(el, b"TI"))
    return {
        "activity_datetime_utc": activity,
        "log_type": "EOF",
        "value": {"endOfFishingDatetimeUtc": stamp},
    }


cdef dict _rtp(xmlNode* el):
    activity, stamp = _when(_get(el, b"DA"), _get(el, b"TI"))
    cdef dict value = {
        "returnDatetimeUtc": stamp,
        "port": _get(el, b"PO"),
        "reasonOfReturn": _get(el, b"RE"),
    }
    gears = _geas(el)
    if gears:
        value["gearOnboard"] = gears
    return {"activity_datetime_utc": activity, "log_type": "RTP", "value": value}


cdef dict _log_entry(xmlNode* el):
    """The report of one log entry; an entry ers.py does not know raises its error."""
    cdef const char* name = <const char*>el.name
    if strcmp(name, b"FAR") == 0:
        return _far(el)
    if strcmp(name, b"DEP") == 0:
        return _dep(el)
    if strcmp(name, b"PNO") == 0:
        return _pno(el)
    if strcmp(name, b"LAN") == 0:
        return _lan(el)
    if strcmp(name, b"DIS") == 0:
        return _dis(el)
    if strcmp(name, b"RTP") == 0:
        return _rtp(el)
    if strcmp(name, b"EOF") == 0:
        return _eof(el)
    if strcmp(name, b"COE") == 0:
        return _effort_zone(el, "COE", True)
    if strcmp(name, b"COX") == 0:
        return _effort_zone(el, "COX", False)
    if strcmp(name, b"CRO") == 0:
        return _cro(el)
    if strcmp(name, b"ECPS") == 0:
        return _ecps(el)
    local_name = _local_name(el)
    if _ers.LOG_PARSERS.get(local_name) is _ers._type_only:
        return {"log_type": local_name}
    raise ValueError(f"unsupported log entry {local_name!r}")


cdef list _log_entries(xmlNode* log, dict metadata):
    """``ers._log_entries``: one report per entry; ECPS nested in ELOG after the others."""
    cdef list reports = []
    cdef xmlNode* first_elog = NULL
    cdef xmlNode* child = _first(log)
    while child is not NULL:
        if child.type == XML_ELEMENT_NODE:
            if strcmp(<const char*>child.name, b"ELOG") == 0:
                if first_elog is NULL:
                    first_elog = child
            else:
                reports.append(_log_entry(child))
        child = _next(child)
    cdef xmlNode* grandchild
    if first_elog is not NULL:
        metadata["trip_number"] = _get(first_elog, b"TN")
        child = first_elog
        while child is not NULL:
            if _named(child, b"ELOG"):
                grandchild = _first(child)
                while grandchild is not NULL:
                    if _named(grandchild, b"ECPS"):
                        reports.append(_ecps(grandchild))
                    grandchild = _next(grandchild)
            child = _next(child)
    return reports


# --- envelope ------------------------------------------------------------------------------------


cdef xmlNode* _only_child(xmlNode* el, const char* name=NULL) except NULL:
    """``ers._only_child``: the single child of an envelope level, called ``name`` when given."""
    cdef xmlNode* child = _first(el)
    cdef Py_ssize_t count = 0
    cdef xmlNode* c_node = child
    while c_node is not NULL:
        count += 1
        c_node = _next(c_node)
    if count != 1:
        raise ValueError(f"{_local_name(el)} must hold exactly one element, found {count}")
    if name is not NULL and not _named(child, name):
        raise ValueError(
            f"{_local_name(el)} must hold {name.decode()}, found {_local_name(child)!r}"
        )
    return child


cdef tuple _parse(xmlNode* ops):
    number_ = _get(ops, b"ON")
    if not number_:
        raise ValueError("missing operation number (OPS/@ON)")
    cdef xmlNode* operation = _only_child(ops)
    operation_type = _local_name(operation)
    cdef dict metadata
    cdef xmlNode* ers
    cdef xmlNode* log
    if operation_type == "DAT" or operation_type == "COR":
        ers = _only_child(operation, b"ERS")
        log = _only_child(ers, b"LOG")
        metadata = {
            "operation_number": number_,
            "operation_country": _get(ops, b"FR"),
            "operation_datetime_utc": _when(_get(ops, b"OD"), _get(ops, b"OT"))[0],
            "software": _get(ops, b"EVL"),
            "is_test_message": _get(ops, b"TS") == "1",
            "operation_type": operation_type,
            "report_id": _get(ers, b"RN"),
            "report_datetime_utc": _when(_get(ers, b"RD"), _get(ers, b"RT"))[0],
            "cfr": _get(log, b"IR"),
            "ircs": _get(log, b"RC"),
            "external_identification": _get(log, b"XR"),
            "vessel_name": _get(log, b"NA"),
            "flag_state": _get(log, b"FS"),
            "imo": _get(log, b"IM"),
        }
        if operation_type == "COR":
            metadata["referenced_report_id"] = _get(operation, b"RN")
        return number_, metadata, _log_entries(log, metadata)
    metadata = {
        "operation_number": number_,
        "operation_country": _get(ops, b"FR"),
        "operation_datetime_utc": _when(_get(ops, b"OD"), _get(ops, b"OT"))[0],
        "software": _get(ops, b"EVL"),
        "is_test_message": _get(ops, b"TS") == "1",
        "operation_type": operation_type,
    }
    cdef list reports
    if operation_type == "DEL":
        metadata["referenced_report_id"] = _get(operation, b"RN")
        reports = [{"value": None}]
    elif operation_type == "RET":
        metadata["referenced_report_id"] = _get(operation, b"ON")
        value = {"returnStatus": _get(operation, b"RS")}
        rejection_cause = _get(operation, b"RE")
        if rejection_cause:
            value["rejectionCause"] = rejection_cause
        reports = [{"value": value}]
    elif operation_type == "QUE" or operation_type == "RSP":
        reports = []
    else:
        raise ValueError(f"unsupported operation {operation_type!r}")
    return number_, metadata, reports


def parse_ops(cetree._Element ops not None):
    """``(operation_number, metadata, reports)`` of an OPS element, exactly as ``ers.parse_ops``."""
    cdef xmlNode* c_node = ops._c_node
    if c_node.doc is not NULL and (c_node.doc.intSubset is not NULL or c_node.doc.extSubset is not NULL):
        return _parse_ops_py(ops)  # attributes may take defaults from the DTD
    try:
        return _parse(c_node)
    except _Fallback:
        return _parse_ops_py(ops)
