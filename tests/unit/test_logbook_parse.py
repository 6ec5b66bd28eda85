"""Hand-written logbook messages for what the reference corpus does not cover.

Operation types (DAT, COR, DEL, RET, QUE) and how ``report_rows`` keeps what a read-time view needs
to resolve them, the BASE64DATA envelope, every kind of malformed input, and property tests: any
bytes, and any tree made of ERS or FLUX vocabulary, either parse or raise ``LogbookParsingError``.
"""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from platform_assets.logbook.parse import (
    ROW_KEYS,
    LogbookParsingError,
    ParsedMessage,
    parse_message,
    report_rows,
)

# --- ERS3 ----------------------------------------------------------------------------------------

ERS_NS = "http://ec.europa.eu/fisheries/schema/ers/v3"
ON = "TST20240101000101"
REFERENCED = "TST20231231000901"
FAR = (
    '<ers:FAR DA="2024-01-01" TI="08:30">'
    '<ers:POS LT="47.5" LG="-3.25"/>'
    '<ers:GEA GE="OTB" ME="80" GC="16.0;16.0"/>'
    '<ers:SPE SN="SOL" WT="12.5">'
    '<ers:RAS FA="27" SA="8" ID="a" EZ="FRA" SR="23E6"/>'
    '<ers:PRO PR="GUT" PS="FRE" TY="BOX" CF="1.04"/>'
    '<ers:ESPE Type="nat" MR="20240001"/>'
    "</ers:SPE>"
    '<ers:SPE SN="HKE" WT="30"/>'
    "</ers:FAR>"
)
PNO = (
    '<ers:PNO PD="2024-01-02" PT="06:00" PO="FRLRH" PC="LAN" DA="2024-01-02" TI="07:00"'
    ' DS="2023-12-30">'
    '<ers:SPE SN="SOL" WT="40" WL="35"><ers:RAS FA="27" SA="8" ID="a"/></ers:SPE>'
    "</ers:PNO>"
)


def ers_log(entries: str = FAR) -> str:
    """An ERS/LOG block holding ``entries`` and the trip number."""
    return (
        f'<ers:ERS RN="{ON}" RD="2024-01-01" RT="10:15">'
        '<ers:LOG IR="FRA000000001" RC="FABC" XR="AB 123" NA="NAVIRE" FS="FRA">'
        f'{entries}<ers:ELOG Type="nat" TN="20240001"/>'
        "</ers:LOG></ers:ERS>"
    )


def ers_message(operation: str, ops_attributes: str = f'ON="{ON}"') -> bytes:
    """An OPS envelope around one operation element."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<ers:OPS xmlns:ers="{ERS_NS}" AD="FRA" FR="TST" {ops_attributes} OD="2024-01-01"'
        f' OT="10:15" EVL="tests 1.0">{operation}</ers:OPS>'
    ).encode()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def test_ers_dat_carries_vessel_and_one_report_per_log_entry() -> None:
    parsed = parse_message(ers_message(f'<ers:DAT TM="CU">{ers_log(FAR + PNO)}</ers:DAT>'))

    assert parsed == ParsedMessage(
        operation_number=ON,
        transmission_format="ERS",
        metadata={
            "operation_number": ON,
            "operation_country": "TST",
            "operation_datetime_utc": utc(2024, 1, 1, 10, 15),
            "software": "tests 1.0",
            "is_test_message": False,
            "operation_type": "DAT",
            "report_id": ON,
            "report_datetime_utc": utc(2024, 1, 1, 10, 15),
            "cfr": "FRA000000001",
            "ircs": "FABC",
            "external_identification": "AB 123",
            "vessel_name": "NAVIRE",
            "flag_state": "FRA",
            "imo": None,
            "trip_number": "20240001",
        },
        reports=[
            {
                "activity_datetime_utc": utc(2024, 1, 1, 8, 30),
                "log_type": "FAR",
                "value": {
                    "hauls": [
                        {
                            "farDatetimeUtc": "2024-01-01T08:30:00Z",
                            "gear": "OTB",
                            "mesh": 80.0,
                            "dimensions": "16.0;16.0",
                            "latitude": 47.5,
                            "longitude": -3.25,
                            "catches": [
                                {
                                    "species": "SOL",
                                    "weight": 12.5,
                                    "nbFish": None,
                                    "faoZone": "27.8.a",
                                    "economicZone": "FRA",
                                    "statisticalRectangle": "23E6",
                                    "effortZone": None,
                                    "presentation": "GUT",
                                    "packaging": "BOX",
                                    "freshness": None,
                                    "preservationState": "FRE",
                                    "conversionFactor": 1.04,
                                },
                                {"species": "HKE", "weight": 30.0, "nbFish": None},
                            ],
                        }
                    ]
                },
            },
            {
                "activity_datetime_utc": utc(2024, 1, 2, 6, 0),
                "log_type": "PNO",
                "value": {
                    "predictedArrivalDatetimeUtc": "2024-01-02T06:00:00Z",
                    "predictedLandingDatetimeUtc": "2024-01-02T07:00:00Z",
                    "port": "FRLRH",
                    "purpose": "LAN",
                    "tripStartDate": "2023-12-30T00:00:00Z",
                    "catchOnboard": [
                        {
                            "species": "SOL",
                            "weight": 40.0,
                            "nbFish": None,
                            "faoZone": "27.8.a",
                            "economicZone": None,
                            "statisticalRectangle": None,
                            "effortZone": None,
                        }
                    ],
                    "catchToLand": [
                        {
                            "species": "SOL",
                            "weight": 35.0,
                            "nbFish": None,
                            "faoZone": "27.8.a",
                            "economicZone": None,
                            "statisticalRectangle": None,
                            "effortZone": None,
                        }
                    ],
                },
            },
        ],
    )


def test_ers_dat_rows_repeat_the_message_fields_on_each_report() -> None:
    parsed = parse_message(ers_message(f'<ers:DAT TM="CU">{ers_log(FAR + PNO)}</ers:DAT>'))

    rows = report_rows(parsed)

    assert [row["log_type"] for row in rows] == ["FAR", "PNO"]
    for row in rows:
        assert tuple(row) == ROW_KEYS
        assert row["operation_type"] == "DAT"
        assert row["report_id"] == ON
        assert row["cfr"] == "FRA000000001"
        assert row["trip_number"] == "20240001"
        assert row["referenced_report_id"] is None
        assert row["transmission_format"] == "ERS"
        assert row["is_test_message"] is False
    assert rows[0]["activity_datetime_utc"] == utc(2024, 1, 1, 8, 30)
    assert rows[1]["value"]["port"] == "FRLRH"


def test_ers_test_flag_and_seconds_in_times() -> None:
    message = ers_message(
        f'<ers:DAT TM="CU">{ers_log(FAR)}</ers:DAT>'.replace('TI="08:30"', 'TI="08:30:59"'),
        ops_attributes=f'ON="{ON}" TS="1"',
    )

    parsed = parse_message(message)

    assert parsed.metadata["is_test_message"] is True
    # Seconds are dropped, as the reference does.
    assert parsed.reports[0]["activity_datetime_utc"] == utc(2024, 1, 1, 8, 30)


def test_ers_cor_references_the_corrected_report() -> None:
    parsed = parse_message(
        ers_message(f'<ers:COR RN="{REFERENCED}" RE="erreur de saisie">{ers_log()}</ers:COR>')
    )

    assert parsed.metadata["operation_type"] == "COR"
    assert parsed.metadata["referenced_report_id"] == REFERENCED
    [row] = report_rows(parsed)
    assert row["operation_type"] == "COR"
    assert row["referenced_report_id"] == REFERENCED
    assert row["report_id"] == ON
    assert row["log_type"] == "FAR"


def test_ers_del_yields_one_row_pointing_at_the_deleted_report() -> None:
    parsed = parse_message(ers_message(f'<ers:DEL RN="{REFERENCED}" RE="erreur"/>'))

    assert parsed.metadata == {
        "operation_number": ON,
        "operation_country": "TST",
        "operation_datetime_utc": utc(2024, 1, 1, 10, 15),
        "software": "tests 1.0",
        "is_test_message": False,
        "operation_type": "DEL",
        "referenced_report_id": REFERENCED,
    }
    assert parsed.reports == [{"value": None}]
    [row] = report_rows(parsed)
    assert row["operation_type"] == "DEL"
    assert row["referenced_report_id"] == REFERENCED
    assert row["report_id"] is None
    assert row["log_type"] is None
    assert row["value"] is None
    assert row["operation_datetime_utc"] == utc(2024, 1, 1, 10, 15)


@pytest.mark.parametrize(
    ("ret", "value"),
    [
        (f'<ers:RET ON="{REFERENCED}" RS="000" RE=""/>', {"returnStatus": "000"}),
        (
            f'<ers:RET ON="{REFERENCED}" RS="002" RE="Message incorrect"/>',
            {"returnStatus": "002", "rejectionCause": "Message incorrect"},
        ),
    ],
)
def test_ers_ret_keeps_the_return_status_for_the_acknowledged_operation(
    ret: str, value: dict
) -> None:
    parsed = parse_message(ers_message(ret))

    assert parsed.metadata["operation_type"] == "RET"
    # A RET acknowledges an operation: it references an operation number.
    assert parsed.metadata["referenced_report_id"] == REFERENCED
    [row] = report_rows(parsed)
    assert row["operation_type"] == "RET"
    assert row["referenced_report_id"] == REFERENCED
    assert row["value"] == value


def test_ers_message_without_reports_still_yields_its_operation_row() -> None:
    parsed = parse_message(ers_message("<ers:QUE/>"))

    assert parsed.reports == []
    [row] = report_rows(parsed)
    assert row["operation_number"] == ON
    assert row["operation_type"] == "QUE"
    assert row["value"] is None


def test_ers_without_namespace_and_with_padding_parses_like_namespaced() -> None:
    namespaced = ers_message(f'<ers:DAT TM="CU">{ers_log()}</ers:DAT>')
    plain = namespaced.replace(b"ers:", b"").replace(f' xmlns="{ERS_NS}"'.encode(), b"")
    plain = plain.replace(f' xmlns:ers="{ERS_NS}"'.encode(), b"")

    assert parse_message("¿".encode() + plain + b"\n") == parse_message(namespaced)
    assert parse_message(namespaced.decode()) == parse_message(namespaced)
    assert parse_message(bytearray(namespaced)) == parse_message(namespaced)


# --- FLUX FA -------------------------------------------------------------------------------------

FLUX_NAMESPACES = (
    'xmlns:rsm="urn:un:unece:uncefact:data:standard:FLUXFAReportMessage:3" '
    'xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:20" '
    'xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:20"'
)
FLUX_ON = "0b6c0f7e-1b2a-4c3d-9e8f-001122334455"
FLUX_REPORT_ID = "5a4b3c2d-1e0f-4a9b-8c7d-665544332211"
FLUX_REFERENCED = "9f8e7d6c-5b4a-4392-8170-ffeeddccbbaa"
DEPARTURE = """
    <ram:SpecifiedFishingActivity>
      <ram:TypeCode listID="FLUX_FA_TYPE">DEPARTURE</ram:TypeCode>
      <ram:OccurrenceDateTime><udt:DateTime>2024-01-01T05:30:00.250Z</udt:DateTime></ram:OccurrenceDateTime>
      <ram:ReasonCode listID="FA_REASON_DEPARTURE">FIS</ram:ReasonCode>
      <ram:SpecifiedFACatch>
        <ram:SpeciesCode listID="FAO_SPECIES">COD</ram:SpeciesCode>
        <ram:WeightMeasure unitCode="KGM">120</ram:WeightMeasure>
        <ram:TypeCode listID="FA_CATCH_TYPE">ONBOARD</ram:TypeCode>
        <ram:SpecifiedFLUXLocation>
          <ram:ID schemeID="FAO_AREA">27.4.b</ram:ID>
        </ram:SpecifiedFLUXLocation>
      </ram:SpecifiedFACatch>
      <ram:RelatedFLUXLocation>
        <ram:TypeCode listID="FLUX_LOCATION_TYPE">LOCATION</ram:TypeCode>
        <ram:ID schemeID="LOCATION">FRBOL</ram:ID>
      </ram:RelatedFLUXLocation>
      <ram:SpecifiedFishingGear>
        <ram:TypeCode listID="GEAR_TYPE">OTB</ram:TypeCode>
        <ram:ApplicableGearCharacteristic>
          <ram:TypeCode listID="FA_GEAR_CHARACTERISTIC">ME</ram:TypeCode>
          <ram:ValueMeasure unitCode="MMT">100</ram:ValueMeasure>
        </ram:ApplicableGearCharacteristic>
      </ram:SpecifiedFishingGear>
      <ram:SpecifiedFishingTrip><ram:ID schemeID="EU_TRIP_ID">FRA-TRP-2024-1</ram:ID></ram:SpecifiedFishingTrip>
    </ram:SpecifiedFishingActivity>"""


def flux_message(
    purpose: str = "9",
    activities: str = DEPARTURE,
    report_type: str = "DECLARATION",
    creation: str = "2024-01-01T06:00:00.999Z",
    operation_id: str = f'<ram:ID schemeID="UUID">{FLUX_ON}</ram:ID>',
) -> bytes:
    """A FLUXFAReportMessage with one FAReportDocument of the reporting vessel."""
    referenced = (
        f'<ram:ReferencedID schemeID="UUID">{FLUX_REFERENCED}</ram:ReferencedID>'
        if purpose != "9"
        else ""
    )
    return f"""<rsm:FLUXFAReportMessage {FLUX_NAMESPACES}>
  <rsm:FLUXReportDocument>
    {operation_id}
    <ram:CreationDateTime><udt:DateTime>{creation}</udt:DateTime></ram:CreationDateTime>
    <ram:PurposeCode listID="FLUX_GP_PURPOSE">9</ram:PurposeCode>
  </rsm:FLUXReportDocument>
  <rsm:FAReportDocument>
    <ram:TypeCode listID="FLUX_FA_REPORT_TYPE">{report_type}</ram:TypeCode>
    <ram:RelatedFLUXReportDocument>
      <ram:ID schemeID="UUID">{FLUX_REPORT_ID}</ram:ID>
      {referenced}
      <ram:CreationDateTime><udt:DateTime>2024-01-01T05:59:00Z</udt:DateTime></ram:CreationDateTime>
      <ram:PurposeCode listID="FLUX_GP_PURPOSE">{purpose}</ram:PurposeCode>
    </ram:RelatedFLUXReportDocument>{activities}
    <ram:SpecifiedVesselTransportMeans>
      <ram:ID schemeID="CFR">FRA000000002</ram:ID>
      <ram:ID schemeID="IRCS">FXYZ</ram:ID>
      <ram:Name>BATEAU</ram:Name>
      <ram:RegistrationVesselCountry><ram:ID schemeID="TERRITORY">FRA</ram:ID></ram:RegistrationVesselCountry>
    </ram:SpecifiedVesselTransportMeans>
  </rsm:FAReportDocument>
</rsm:FLUXFAReportMessage>""".encode()


def envelope(message: bytes) -> bytes:
    """``message`` as FLUX traffic often carries it: gzip, base64, in a BASE64DATA element."""
    payload = base64.b64encode(gzip.compress(message)).decode("ascii")
    return f'<?xml version="1.0"?>\n<BASE64DATA encoding="Base64">{payload}\n</BASE64DATA>'.encode()


def test_flux_report_repeats_operation_fields_and_reads_the_activity() -> None:
    parsed = parse_message(flux_message())

    assert parsed.operation_number == FLUX_ON
    assert parsed.transmission_format == "FLUX"
    assert parsed.metadata == {"operation_number": FLUX_ON}
    assert parsed.reports == [
        {
            "activity_datetime_utc": datetime(2024, 1, 1, 5, 30, 0, 250000, tzinfo=UTC),
            "operation_number": FLUX_ON,
            "operation_datetime_utc": utc(2024, 1, 1, 6, 0),
            "operation_type": "DAT",
            "report_id": FLUX_REPORT_ID,
            "report_datetime_utc": utc(2024, 1, 1, 5, 59),
            "trip_number": "FRA-TRP-2024-1",
            "referenced_report_id": None,
            "cfr": "FRA000000002",
            "ircs": "FXYZ",
            "external_identification": None,
            "vessel_name": "BATEAU",
            "flag_state": "FRA",
            "imo": None,
            "log_type": "DEP",
            "value": {
                "departureDatetimeUtc": "2024-01-01T05:30:00.250Z",
                "departurePort": "FRBOL",
                "anticipatedActivity": "FIS",
                "gearOnboard": [{"gear": "OTB", "mesh": 100.0, "dimensions": None}],
                "speciesOnboard": [
                    {
                        "species": "COD",
                        "weight": 120.0,
                        "nbFish": None,
                        "faoZone": "27.4.b",
                        "economicZone": None,
                        "statisticalRectangle": None,
                        "effortZone": None,
                    }
                ],
            },
        }
    ]
    [row] = report_rows(parsed)
    assert tuple(row) == ROW_KEYS
    assert row["operation_country"] is None
    assert row["is_test_message"] is False
    assert row["transmission_format"] == "FLUX"


def test_flux_in_base64_envelope_parses_to_the_same_result_as_plain() -> None:
    plain = flux_message()

    assert parse_message(envelope(plain), source="wrapped") == parse_message(plain)
    assert parse_message(envelope(plain).decode()) == parse_message(plain)


@pytest.mark.parametrize(
    ("purpose", "operation_type"), [("9", "DAT"), ("1", "DEL"), ("3", "DEL"), ("5", "COR")]
)
def test_flux_purpose_code_gives_the_operation_type(purpose: str, operation_type: str) -> None:
    [row] = report_rows(parse_message(flux_message(purpose=purpose)))

    assert row["operation_type"] == operation_type
    assert row["referenced_report_id"] == (None if purpose == "9" else FLUX_REFERENCED)


def test_flux_deletion_without_activity_has_no_log_type_nor_value() -> None:
    parsed = parse_message(flux_message(purpose="3", activities="", report_type="NOTIFICATION"))

    [report] = parsed.reports
    assert "log_type" not in report
    assert "value" not in report
    assert report["activity_datetime_utc"] is None
    [row] = report_rows(parsed)
    assert (row["operation_type"], row["log_type"], row["value"]) == ("DEL", None, None)
    assert row["referenced_report_id"] == FLUX_REFERENCED


# --- malformed input -----------------------------------------------------------------------------

DAT = f'<ers:DAT TM="CU">{ers_log()}</ers:DAT>'
MALFORMED: list[tuple[str, object, str]] = [
    ("empty", b"", "empty message"),
    ("blank", b" \n\t", "empty message"),
    ("empty text", "", "empty message"),
    ("not xml", b"ceci n'est pas un message", "not XML"),
    ("truncated xml", ers_message(DAT)[:300], "not XML"),
    ("not xml bytes", bytes(range(256)), "not XML"),
    ("wrong type", 42, "expected bytes or str"),
    ("wrong root", b"<message><OPS/></message>", "unexpected root element"),
    (
        "FLUX sales report",
        flux_message().replace(b"FLUXFAReportMessage", b"FLUXSalesReportMessage"),
        "unexpected root element",
    ),
    (
        "ERS missing operation number",
        ers_message(DAT, ops_attributes='TS="0"'),
        "missing operation number",
    ),
    (
        "ERS empty operation number",
        ers_message(DAT, ops_attributes='ON=""'),
        "missing operation number",
    ),
    ("FLUX missing operation number", flux_message(operation_id=""), "missing operation number"),
    ("ERS bad date", ers_message(DAT).replace(b'OD="2024-01-01"', b'OD="2024-13-01"'), "date"),
    (
        "ERS date format",
        ers_message(DAT).replace(b'OD="2024-01-01"', b'OD="01/01/2024"'),
        "YYYY-MM-DD",
    ),
    ("ERS bad time", ers_message(DAT).replace(b'TI="08:30"', b'TI="0830"'), "HH:MM"),
    ("ERS bad number", ers_message(DAT).replace(b'WT="12.5"', b'WT="12,5"'), "SPE/@WT '12,5'"),
    ("ERS infinite number", ers_message(DAT).replace(b'LT="47.5"', b'LT="inf"'), "finite"),
    (
        "ERS bad integer",
        ers_message(DAT).replace(
            b'<ers:ELOG Type="nat" TN="20240001"/>',
            b'<ers:ELOG Type="nat" TN="20240001"><ers:ECPS DA="2024-01-01">'
            b'<ers:EDCI CA="ten"/></ers:ECPS></ers:ELOG>',
        ),
        "EDCI/@CA",
    ),
    (
        "ERS unknown log entry",
        ers_message(f"<ers:DAT>{ers_log('<ers:XYZ/>')}</ers:DAT>"),
        "unsupported log entry 'XYZ'",
    ),
    ("ERS unknown operation", ers_message("<ers:ABC/>"), "unsupported operation 'ABC'"),
    ("ERS two operations", ers_message("<ers:QUE/><ers:QUE/>"), "exactly one element"),
    ("ERS DAT without ERS", ers_message("<ers:DAT><ers:LOG/></ers:DAT>"), "must hold ERS"),
    (
        "ERS two RAS in a catch",
        ers_message(
            DAT.replace(
                '<ers:SPE SN="HKE" WT="30"/>', '<ers:SPE SN="HKE"><ers:RAS/><ers:RAS/></ers:SPE>'
            )
        ),
        "more than one RAS",
    ),
    (
        "ERS two positions in a FAR",
        ers_message(DAT.replace('<ers:POS LT="47.5" LG="-3.25"/>', "<ers:POS/><ers:POS/>")),
        "more than one POS",
    ),
    ("FLUX bad datetime", flux_message(creation="2024-01-01 at six"), "ISO 8601"),
    (
        "FLUX bad activity datetime",
        flux_message().replace(b"2024-01-01T05:30:00.250Z", b"yesterday"),
        "ISO 8601",
    ),
    ("FLUX bad weight", flux_message().replace(b">120<", b">a lot<"), "WeightMeasure"),
    ("FLUX unknown purpose", flux_message(purpose="7"), "FLUX_GP_PURPOSE code '7'"),
    ("FLUX unknown report type", flux_message(report_type="DRAFT"), "FLUX_FA_REPORT_TYPE"),
    (
        "FLUX unknown activity",
        flux_message(activities=DEPARTURE.replace(">DEPARTURE<", ">SWIMMING<")),
        "fishing activity type 'SWIMMING'",
    ),
    ("FLUX notified departure", flux_message(report_type="NOTIFICATION"), "no log type"),
    (
        "FLUX mixed activities",
        flux_message(activities=DEPARTURE + DEPARTURE.replace(">DEPARTURE<", ">ARRIVAL<")),
        "different types",
    ),
    ("FLUX two departures", flux_message(activities=DEPARTURE + DEPARTURE), "2 DEP activities"),
    ("envelope empty", b"<BASE64DATA/>", "empty BASE64DATA"),
    ("envelope not base64", b"<BASE64DATA>abc</BASE64DATA>", "not base64"),
    (
        "envelope not gzip",
        b"<BASE64DATA>" + base64.b64encode(b"<OPS/>") + b"</BASE64DATA>",
        "not gzip",
    ),
    (
        "envelope truncated gzip",
        b"<BASE64DATA>" + base64.b64encode(gzip.compress(flux_message())[:40]) + b"</BASE64DATA>",
        "truncated",
    ),
    (
        "envelope content not xml",
        envelope(b"This is a base64 encoded message"),
        "BASE64DATA content is not XML",
    ),
    ("envelope in envelope", envelope(envelope(flux_message())), "unexpected root element"),
]


@pytest.mark.parametrize(
    ("message", "reason"),
    [pytest.param(message, reason, id=name) for name, message, reason in MALFORMED],
)
def test_malformed_message_raises_naming_source_and_reason(message: object, reason: str) -> None:
    with pytest.raises(LogbookParsingError) as raised:
        parse_message(message, source="inbox/batch-7/message.xml")  # type: ignore[arg-type]

    text = str(raised.value)
    assert text.startswith("inbox/batch-7/message.xml")
    assert reason in text
    assert "unexpected " not in text.replace("unexpected root element", "")


def test_error_names_the_operation_once_it_is_known() -> None:
    with pytest.raises(LogbookParsingError, match=rf"m\.xml \(operation {ON}\): .*HH:MM"):
        parse_message(ers_message(DAT).replace(b'TI="08:30"', b'TI="8h30"'), source="m.xml")
    with pytest.raises(LogbookParsingError, match=rf"f\.xml \(operation {FLUX_ON}\): "):
        parse_message(flux_message(purpose="0"), source="f.xml")


def test_parsing_error_is_a_value_error() -> None:
    assert issubclass(LogbookParsingError, ValueError)


def test_entities_are_neither_fetched_nor_expanded_without_bound() -> None:
    external = (
        b'<?xml version="1.0"?><!DOCTYPE OPS [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<OPS ON="A1" OD="2024-01-01" OT="10:00"><DEL RN="&x;"/></OPS>'
    )
    laughs = b"".join(
        [
            b'<?xml version="1.0"?><!DOCTYPE OPS [<!ENTITY a "aaaaaaaaaa">',
            *(
                f'<!ENTITY {name} "{("&" + previous + ";") * 10}">'.encode()
                for previous, name in zip("abcdefg", "bcdefgh", strict=True)
            ),
            b']><OPS ON="&h;" OD="2024-01-01" OT="10:00"><DEL RN="x"/></OPS>',
        ]
    )
    for message in (external, laughs):
        with pytest.raises(LogbookParsingError, match="document type declaration"):
            parse_message(message)


# --- properties ----------------------------------------------------------------------------------


def assert_parses_or_raises_parsing_error(message: bytes | str) -> None:
    """The contract: a ParsedMessage, or a LogbookParsingError that is not an internal failure."""
    try:
        parsed = parse_message(message, source="fuzz")
    except LogbookParsingError as exc:
        assert "unexpected " not in str(exc).replace("unexpected root element", ""), exc
        return
    assert isinstance(parsed, ParsedMessage)
    for row in report_rows(parsed):
        assert tuple(row) == ROW_KEYS


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_parse_or_raise_parsing_error(message: bytes) -> None:
    assert_parses_or_raises_parsing_error(message)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_after_a_valid_prefix_parse_or_raise(tail: bytes) -> None:
    # Lands inside the tree instead of failing on the first byte.
    message = ers_message(DAT)
    assert_parses_or_raises_parsing_error(message[: len(message) // 2] + tail)


XML_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"),
    max_size=12,
)
FIELD_VALUES = st.one_of(
    st.sampled_from(
        [
            *["", " ", "1", "0", "2024-02-29", "2023-02-29", "10:15", "10:15:30", "24:00"],
            *["12.5", "-0.0", "1e3", "nan", "inf", "abc", "000", "27", "8", "a", "9", "5", "3"],
            *["1", "2024-01-01T00:00:00Z", "2024-01-01T00:00:00+02:00", "DECLARATION"],
            *["NOTIFICATION", "DEPARTURE", "FISHING_OPERATION", "ARRIVAL", "LANDING"],
            *["AREA_ENTRY", "AREA_EXIT", "ONBOARD", "UNLOADED", "ME", "GM"],
        ]
    ),
    XML_TEXT,
)
ERS_LOG_TAGS = [
    *["DEP", "FAR", "DIS", "EOF", "PNO", "RTP", "LAN", "RLC", "TRA", "COE", "COX", "CRO"],
    *["INS", "PNT", "ECPS", "XYZ"],
]
ERS_PART_TAGS = ["SPE", "RAS", "PRO", "POS", "GEA", "EDCI", "COE", "COX", "ESPE", "GES"]
ERS_ATTRIBUTES = [
    *["ON", "OD", "OT", "TS", "EVL", "FR", "RN", "RD", "RT", "RE", "RS", "IR", "RC", "XR"],
    *["NA", "FS", "IM", "TN", "DA", "TI", "PD", "PT", "DS", "PO", "PC", "AA", "SN", "WT"],
    *["WL", "NF", "FL", "CF", "PR", "TY", "FF", "PS", "FA", "SA", "ID", "SD", "UI", "EZ"],
    *["SR", "FE", "GE", "ME", "GC", "LT", "LG", "SE", "HE", "CA", "RI", "FT", "CO"],
]
ers_attributes = st.dictionaries(st.sampled_from(ERS_ATTRIBUTES), FIELD_VALUES, max_size=4)


def _element(tag: str, attributes: dict[str, str], children: list[str], text: str = "") -> str:
    rendered = "".join(f" {name}={quoteattr(value)}" for name, value in attributes.items())
    return f"<{tag}{rendered}>{escape(text)}{''.join(children)}</{tag}>"


ers_parts = st.recursive(
    st.builds(_element, st.sampled_from(ERS_PART_TAGS), ers_attributes, st.just([])),
    lambda children: st.builds(
        _element, st.sampled_from(ERS_PART_TAGS), ers_attributes, st.lists(children, max_size=3)
    ),
    max_leaves=12,
)
ers_log_entries = st.builds(
    _element,
    st.sampled_from(ERS_LOG_TAGS),
    ers_attributes,
    st.lists(ers_parts, max_size=4),
)


@st.composite
def ers_messages(draw: st.DrawFn) -> str:
    """An OPS envelope (well-formed, or not for the odd operation) around random log entries, so
    that examples reach the entry and catch parsers instead of failing at the first level."""
    operation = draw(
        st.sampled_from(["DAT", "DAT", "DAT", "COR", "COR", "DEL", "RET", "QUE", "XYZ"])
    )
    envelope_attributes = draw(ers_attributes)
    envelope_attributes.setdefault("ON", ON)
    entries = draw(st.lists(ers_log_entries, max_size=4))
    elog = st.builds(
        _element, st.just("ELOG"), ers_attributes, st.lists(ers_log_entries, max_size=2)
    )
    log = _element("LOG", draw(ers_attributes), entries + draw(st.lists(elog, max_size=2)))
    body = _element(operation, {"RN": REFERENCED}, [_element("ERS", {"RN": ON}, [log])])
    return _element("OPS", envelope_attributes, [body])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ers_messages())
def test_any_ers_shaped_tree_parses_or_raises_parsing_error(message: str) -> None:
    assert_parses_or_raises_parsing_error(message.encode())


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(ERS_ATTRIBUTES), FIELD_VALUES, max_size=8))
def test_valid_ers_with_any_field_values_parses_or_raises_parsing_error(
    values: dict[str, str],
) -> None:
    message = ers_message(f'<ers:DAT TM="CU">{ers_log(FAR + PNO)}</ers:DAT>').decode()
    for name, value in values.items():
        # The first attribute called ``name`` takes the new value; its old value moves to an
        # unknown attribute so that the XML stays well-formed.
        message = message.replace(f' {name}="', f' {name}={quoteattr(value)} X{name}="', 1)
    assert_parses_or_raises_parsing_error(message)


FLUX_TAGS = [
    *["ram:ID", "ram:ReferencedID", "ram:TypeCode", "ram:ReasonCode", "ram:RoleCode"],
    *["ram:Name", "ram:CreationDateTime", "ram:OccurrenceDateTime", "ram:StartDateTime"],
    *["ram:EndDateTime", "ram:SpecifiedDelimitedPeriod", "ram:SpecifiedFishingTrip"],
    *["ram:SpecifiedVesselTransportMeans", "ram:SpecifiedContactParty"],
    *["ram:SpecifiedFishingActivity", "ram:RelatedFLUXLocation"],
    *["ram:SpecifiedFLUXLocation", "ram:SpecifiedPhysicalFLUXGeographicalCoordinate"],
    *["ram:LatitudeMeasure", "ram:LongitudeMeasure", "ram:SpecifiedFACatch"],
    *["ram:SpeciesCode", "ram:SpeciesTargetCode", "ram:WeightMeasure", "ram:UnitQuantity"],
    *["ram:AppliedAAPProcess", "ram:ResultAAPProduct", "ram:ConversionFactorNumeric"],
    *["ram:SpecifiedFishingGear", "ram:UsedFishingGear"],
    *["ram:ApplicableGearCharacteristic", "ram:ValueMeasure", "ram:PurposeCode"],
    *["ram:RelatedFLUXReportDocument", "udt:DateTime"],
]
FLUX_ATTRIBUTE_VALUES = {
    "schemeID": st.sampled_from(
        [
            *["UUID", "CFR", "IRCS", "EXT_MARK", "UVI", "TERRITORY", "FAO_AREA"],
            *["STAT_RECTANGLE", "EFFORT_ZONE", "LOCATION", "EU_TRIP_ID"],
        ]
    ),
    "listID": st.sampled_from(
        [
            *["FLUX_GP_PURPOSE", "FLUX_FA_REPORT_TYPE", "FLUX_FA_TYPE", "GEAR_TYPE"],
            *["FAO_SPECIES", "FISH_PRESENTATION", "FISH_PACKAGING", "FISH_PRESERVATION"],
            *["FA_REASON_DEPARTURE", "FA_REASON_ARRIVAL", "TARGET_SPECIES_GROUP"],
            *["FLUX_CONTACT_ROLE"],
        ]
    ),
    "unitCode": st.just("KGM"),
}
flux_attributes = st.fixed_dictionaries(
    {}, optional={name: values for name, values in FLUX_ATTRIBUTE_VALUES.items()}
)
flux_trees = st.recursive(
    st.builds(_element, st.sampled_from(FLUX_TAGS), flux_attributes, st.just([]), FIELD_VALUES),
    lambda children: st.builds(
        _element, st.sampled_from(FLUX_TAGS), flux_attributes, st.lists(children, max_size=4)
    ),
    max_leaves=30,
)


flux_activities = st.builds(
    lambda activity_type, content: _element(
        "ram:SpecifiedFishingActivity",
        {},
        [_element("ram:TypeCode", {"listID": "FLUX_FA_TYPE"}, [], activity_type), *content],
    ),
    st.sampled_from(
        [
            *["DEPARTURE", "FISHING_OPERATION", "DISCARD", "ARRIVAL", "LANDING", "RELOCATION"],
            *["TRANSHIPMENT", "AREA_ENTRY", "AREA_EXIT", "JOINT_FISHING_OPERATION"],
            *["GEAR_SHOT", "SWIMMING"],
        ]
    ),
    st.lists(flux_trees, max_size=5),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["DECLARATION"] * 4 + ["NOTIFICATION"] * 3 + ["DRAFT"]),
    st.sampled_from(["9", "9", "9", "1", "3", "5", "7"]),
    st.lists(flux_activities, max_size=2),
    st.lists(flux_trees, max_size=3),
    st.booleans(),
)
def test_any_flux_shaped_tree_parses_or_raises_parsing_error(
    report_type: str, purpose: str, activities: list[str], extra: list[str], wrapped: bool
) -> None:
    # A report skeleton with the codes the parser dispatches on, around random content.
    document = _element(
        "rsm:FAReportDocument",
        {},
        [
            _element("ram:TypeCode", {"listID": "FLUX_FA_REPORT_TYPE"}, [], report_type),
            _element(
                "ram:RelatedFLUXReportDocument",
                {},
                [_element("ram:PurposeCode", {"listID": "FLUX_GP_PURPOSE"}, [], purpose)],
            ),
            *activities,
            *extra,
        ],
    )
    message = (
        f"<rsm:FLUXFAReportMessage {FLUX_NAMESPACES}><rsm:FLUXReportDocument>"
        f'<ram:ID schemeID="UUID">{FLUX_ON}</ram:ID></rsm:FLUXReportDocument>'
        f"{document}</rsm:FLUXFAReportMessage>"
    ).encode()
    assert_parses_or_raises_parsing_error(envelope(message) if wrapped else message)
