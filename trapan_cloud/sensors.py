"""Sensor table: band names, MTF gains at Nyquist, radiometric bit depth and default PAN/MS ratio.

MTF gains come from the 2021 pansharpening toolbox (Vivone et al., `genMTF.m` / `MTF_PAN.m`, see
``reference/METRICS.md`` §4.1). Sensors without published values (GF2, Pleiades, Landsat 8/9, generic) use the
toolbox's own fallback, 0.3 for every MS band and 0.15 for PAN, and say so in ``gains_source``.

Toolbox behaviour kept on purpose: when an image has fewer bands than the sensor's full table (e.g. the 4-band
WorldView-2 product), the toolbox takes the *first* ``B`` gains of the table; ``ms_gnyq`` does the same so that
D_λ^K and HQNR stay comparable with published numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InputError

TOOLBOX_FALLBACK = "toolbox fallback (no published value): 0.3 per MS band, 0.15 for PAN"


@dataclass(frozen=True)
class Sensor:
    """One entry of the sensor table."""

    name: str
    """Canonical name, as spelled in the API (case-insensitive on input)."""
    band_names: tuple[str, ...]
    """Names of the sensor's full MS band set, in storage order."""
    band_sets: tuple[tuple[str, ...], ...]
    """Band subsets that real products ship (each is accepted); empty tuple = any band count (``generic``)."""
    gnyq_ms: tuple[float, ...]
    """MTF gain at the MS Nyquist frequency per band of ``band_names`` (toolbox table)."""
    gnyq_pan: float
    """MTF gain of the PAN band at its Nyquist frequency."""
    bit_depth: int
    """Radiometric resolution L: valid DN are 0 .. 2**L - 1."""
    ratio: int
    """Default PAN/MS pixel-size ratio."""
    gains_source: str = "Vivone et al. 2021 toolbox, genMTF.m / MTF_PAN.m"
    """Where the MTF gains come from."""
    platforms: tuple[str, ...] = ()
    """Lower-case STAC ``platform``/``constellation`` values that identify the sensor."""

    @property
    def max_dn(self) -> int:
        """Largest valid digital number, ``2**bit_depth - 1`` (the normalisation constant of the core)."""
        return 2**self.bit_depth - 1

    def check_bands(self, nbands: int, argument: str = "ms") -> None:
        """Raise `InputError` unless ``nbands`` is a band count this sensor's products have."""
        if nbands < 1:
            raise InputError(f"{argument}: expected at least one band, found {nbands}")
        if not self.band_sets:
            return
        counts = sorted({len(s) for s in self.band_sets})
        if nbands not in counts:
            raise InputError(
                f"{argument}: {self.name} products have {' or '.join(map(str, counts))} MS bands, found {nbands}; "
                f"pass the right sensor (known: {', '.join(KNOWN)}) or sensor='generic'"
            )

    def bands_for(self, nbands: int) -> tuple[str, ...]:
        """Band names of a product with ``nbands`` bands (generic names where the sensor has no such set)."""
        for s in self.band_sets:
            if len(s) == nbands:
                return s
        return tuple(f"b{i + 1}" for i in range(nbands))

    def ms_gnyq(self, nbands: int) -> tuple[float, ...]:
        """MTF gains for an ``nbands``-band image, taken the toolbox way (first ``nbands`` entries of the table)."""
        self.check_bands(nbands)
        if len(set(self.gnyq_ms)) == 1:
            return (self.gnyq_ms[0],) * nbands
        return tuple(self.gnyq_ms[:nbands])


_WV_8 = ("coastal", "blue", "green", "yellow", "red", "rededge", "nir1", "nir2")
_BGRN = ("blue", "green", "red", "nir")
_LANDSAT = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")
_LANDSAT_SETS = (("blue", "green", "red"), ("blue", "green", "red", "nir08"), _LANDSAT)

_TABLE: tuple[Sensor, ...] = (
    Sensor("WV3", _WV_8, (_WV_8,), (0.325, 0.355, 0.360, 0.350, 0.365, 0.360, 0.335, 0.315), 0.14, 11, 4,
           platforms=("worldview-3", "wv03", "wv3")),
    Sensor("WV2", _WV_8, (_WV_8, ("blue", "green", "red", "nir1")), (0.35,) * 7 + (0.27,), 0.11, 11, 4,
           platforms=("worldview-2", "wv02", "wv2")),
    Sensor("QB", _BGRN, (_BGRN,), (0.34, 0.32, 0.30, 0.22), 0.15, 11, 4, platforms=("quickbird", "qb02", "quickbird-2")),
    Sensor("IKONOS", _BGRN, (_BGRN,), (0.26, 0.28, 0.29, 0.28), 0.17, 11, 4, platforms=("ikonos",)),
    Sensor("GeoEye1", _BGRN, (_BGRN,), (0.23,) * 4, 0.16, 11, 4, platforms=("geoeye-1", "ge01", "geoeye1")),
    Sensor("WV4", _BGRN, (_BGRN,), (0.23,) * 4, 0.16, 11, 4,
           gains_source="toolbox genMTF.m for MS; PAN 0.16 assumed from GeoEye1 (toolbox MTF_PAN.m)",
           platforms=("worldview-4", "wv04", "wv4")),
    Sensor("Landsat8", _LANDSAT, _LANDSAT_SETS, (0.3,) * 7, 0.15, 16, 2, gains_source=TOOLBOX_FALLBACK,
           platforms=("landsat-8", "landsat_8", "landsat8")),
    Sensor("Landsat9", _LANDSAT, _LANDSAT_SETS, (0.3,) * 7, 0.15, 16, 2, gains_source=TOOLBOX_FALLBACK,
           platforms=("landsat-9", "landsat_9", "landsat9")),
    Sensor("GF2", _BGRN, (_BGRN,), (0.3,) * 4, 0.15, 10, 4, gains_source=TOOLBOX_FALLBACK,
           platforms=("gf2", "gaofen-2", "gf-2")),
    Sensor("Pleiades", _BGRN, (_BGRN,), (0.3,) * 4, 0.15, 12, 4, gains_source=TOOLBOX_FALLBACK,
           platforms=("pleiades", "phr1a", "phr1b", "pleiades-1a", "pleiades-1b")),
    Sensor("generic", (), (), (0.3,), 0.15, 16, 4, gains_source=TOOLBOX_FALLBACK),
)

SENSORS: dict[str, Sensor] = {s.name.lower(): s for s in _TABLE}
KNOWN: tuple[str, ...] = tuple(s.name for s in _TABLE)


def get_sensor(name: str | Sensor) -> Sensor:
    """Look a sensor up by case-insensitive name; an unknown name raises `InputError` listing the known ones.

    >>> get_sensor("wv3").gnyq_pan
    0.14
    """
    if isinstance(name, Sensor):
        return name
    try:
        return SENSORS[str(name).lower()]
    except KeyError:
        raise InputError(f"sensor: unknown sensor {name!r}; known sensors: {', '.join(KNOWN)}") from None


def sensor_from_platform(platform: str | None) -> Sensor | None:
    """Sensor matching a STAC ``platform``/``constellation`` string, or None when it is not in the table."""
    if not platform:
        return None
    key = str(platform).lower()
    for s in _TABLE:
        if key in s.platforms:
            return s
    return None


# Centre wavelengths (µm) of the MS bands: the midpoint of each band's edges in the vendor's or agency's published
# band table. WorldView-2/-3 (VNIR): DigitalGlobe/Maxar "WorldView-2" and "WorldView-3" data sheets; QuickBird,
# GeoEye-1, WorldView-4, IKONOS: the DigitalGlobe/Maxar data sheets of each satellite; Landsat 8/9 OLI: USGS "Landsat
# 8-9 OLI/TIRS" band designations; GF-2: CRESDA GF-2 PMS band table; Pléiades: Airbus "Pléiades Imagery User Guide".
_WV_VNIR = {"coastal": 0.425, "blue": 0.480, "green": 0.545, "yellow": 0.605, "red": 0.660, "rededge": 0.725,
            "nir1": 0.8325, "nir2": 0.950}
_GE_BGRN = {"blue": 0.480, "green": 0.545, "red": 0.6725, "nir": 0.850}
_OLI = {"coastal": 0.443, "blue": 0.4825, "green": 0.5625, "red": 0.655, "nir08": 0.865, "swir16": 1.610,
        "swir22": 2.200}
CENTRE_WAVELENGTH_UM: dict[str, dict[str, float]] = {
    "WV3": _WV_VNIR, "WV2": _WV_VNIR,
    "QB": {"blue": 0.485, "green": 0.560, "red": 0.660, "nir": 0.830},
    "IKONOS": {"blue": 0.4805, "green": 0.5505, "red": 0.665, "nir": 0.805},
    "GeoEye1": _GE_BGRN, "WV4": _GE_BGRN,
    "Landsat8": _OLI, "Landsat9": _OLI,
    "GF2": {"blue": 0.485, "green": 0.555, "red": 0.660, "nir": 0.830},
    "Pleiades": {"blue": 0.490, "green": 0.550, "red": 0.660, "nir": 0.850},
}
"""Centre wavelength in micrometres per sensor and band name (absent: unknown, e.g. ``generic``)."""

COMMON_NAMES = frozenset({"coastal", "blue", "green", "red", "rededge", "yellow", "pan", "nir", "nir08", "nir09",
                          "cirrus", "swir16", "swir22", "lwir", "lwir11", "lwir12"})
"""The STAC ``eo`` extension's common band names."""
_COMMON_ALIASES = {"nir1": "nir", "nir2": "nir09"}


def common_name(band: str) -> str | None:
    """The STAC ``eo`` common name of a band name of this table (None when it has none).

    >>> common_name("nir1"), common_name("red"), common_name("b3")
    ('nir', 'red', None)
    """
    name = _COMMON_ALIASES.get(band, band)
    return name if name in COMMON_NAMES else None


def centre_wavelength_um(sensor: str | Sensor, band: str) -> float | None:
    """The centre wavelength (µm) of ``band`` of ``sensor`` (None when the table has none)."""
    return CENTRE_WAVELENGTH_UM.get(get_sensor(sensor).name, {}).get(band)
