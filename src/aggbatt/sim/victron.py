"""Simulated Victron devices used for current measurement: Multi (vebus), MPPT, SmartShunt."""

from __future__ import annotations

from aggbatt.sim.device import SimDevice
from aggbatt.venus.wire import Value


class SimDcDevice(SimDevice):
    """A device with one DC voltage and current that a test or the demo sets."""

    voltage = 53.0
    current = 0.0

    def live_values(self) -> dict[str, Value]:
        raise NotImplementedError

    def set(self, current: float, voltage: float | None = None) -> int:
        self.current = current
        if voltage is not None:
            self.voltage = voltage
        return self.update(self.live_values())


class SimVebus(SimDcDevice):
    """``com.victronenergy.vebus``: a MultiPlus/Quattro; + current flows into the battery.

    With ``ess``, it is what systemcalc's DVCC needs to see to steer it as an ESS Multi on the
    grid: the ESS assistant (``/Hub4/AssistantId`` 5), firmware with the BOL frame, AC input
    connected, and the charge state ``/State`` 3 (bulk).
    """

    product_name = "MultiPlus-II 48/5000/70-50"
    product_id = 0x2704
    connection = "VE.Bus"

    def __init__(
        self, port: str = "ttyS4", device_instance: int = 276, *, ess: bool = False
    ) -> None:
        super().__init__(f"com.victronenergy.vebus.{port}", device_instance)
        self.connected = 1
        self.ess = ess

    def initial_paths(self) -> dict[str, Value]:
        ess: dict[str, Value] = {}
        if self.ess:
            ess = {
                "/State": 3,
                "/FirmwareVersion": 0x502,
                "/FirmwareFeatures/BolFrame": 1,
                "/Hub4/AssistantId": 5,
                "/Hub4/DoNotFeedInOvervoltage": 0,
                "/Hub/ChargeVoltage": None,
                "/Ac/ActiveIn/Connected": 1,
                "/Ac/ActiveIn/ActiveInput": 0,
                "/Dc/0/MaxChargeCurrent": None,
            }
        return {
            "/CustomName": "",
            "/State": 9,
            "/Mode": 3,
            "/Soc": None,
            "/BatteryOperationalLimits/MaxChargeVoltage": None,
            "/BatteryOperationalLimits/MaxChargeCurrent": None,
            "/BatteryOperationalLimits/MaxDischargeCurrent": None,
            "/BatteryOperationalLimits/BatteryLowVoltage": None,
            "/Bms/AllowToCharge": 1,
            "/Bms/AllowToDischarge": 1,
            **self.live_values(),
            **ess,
        }

    def writable_paths(self) -> frozenset[str]:
        return frozenset(
            {"/CustomName", "/Mode", "/Dc/0/MaxChargeCurrent"}
            | {p for p in self.initial_paths() if p.startswith("/BatteryOperationalLimits/")}
        )

    def live_values(self) -> dict[str, Value]:
        return {
            "/Connected": self.connected,
            "/Dc/0/Voltage": round(self.voltage, 2),
            "/Dc/0/Current": round(self.current, 1),
            "/Dc/0/Power": round(self.voltage * self.current),
        }


class SimSolarCharger(SimDcDevice):
    """``com.victronenergy.solarcharger``: an MPPT; its current flows into the battery."""

    product_name = "SmartSolar Charger MPPT 250/100"
    product_id = 0xA057
    connection = "VE.Direct"

    def __init__(self, port: str = "ttyS5", device_instance: int = 278) -> None:
        super().__init__(f"com.victronenergy.solarcharger.{port}", device_instance)

    def initial_paths(self) -> dict[str, Value]:
        return {
            "/CustomName": "",
            "/State": 3,
            "/FirmwareVersion": 0x161,
            "/Link/NetworkMode": 0,
            "/Link/ChargeVoltage": None,
            "/Link/ChargeCurrent": None,
            "/Settings/ChargeCurrentLimit": 100.0,
            "/Settings/BmsPresent": 0,
            **self.live_values(),
        }

    def writable_paths(self) -> frozenset[str]:
        return frozenset(
            {"/CustomName", "/Link/NetworkMode", "/Link/ChargeVoltage", "/Link/ChargeCurrent",
             "/Settings/BmsPresent"}
        )  # fmt: skip

    def live_values(self) -> dict[str, Value]:
        return {
            "/Dc/0/Voltage": round(self.voltage, 2),
            "/Dc/0/Current": round(self.current, 1),
            "/Yield/Power": round(self.voltage * self.current),
        }


class SimSmartShunt(SimDcDevice):
    """A SmartShunt in battery-monitor mode (``battery.*``) or DC-meter mode (``dcload.*``)."""

    product_id = 0xA389
    connection = "VE.Direct"

    def __init__(
        self,
        port: str = "ttyUSB5",
        device_instance: int = 279,
        *,
        mode: str = "battery",
        custom_name: str = "",
    ) -> None:
        if mode not in ("battery", "dcload"):
            raise ValueError("SmartShunt mode is 'battery' or 'dcload'")
        super().__init__(f"com.victronenergy.{mode}.{port}", device_instance)
        self.mode = mode
        self.product_name = "SmartShunt 500A/50mV"
        self.custom_name = custom_name

    def initial_paths(self) -> dict[str, Value]:
        paths: dict[str, Value] = {"/CustomName": self.custom_name, **self.live_values()}
        if self.mode == "battery":
            paths.update({"/Soc": 60.0, "/ConsumedAmphours": -112.0, "/TimeToGo": None})
        else:
            paths.update({"/History/EnergyIn": 0.0})
        return paths

    def live_values(self) -> dict[str, Value]:
        return {
            "/Dc/0/Voltage": round(self.voltage, 2),
            "/Dc/0/Current": round(self.current, 2),
            "/Dc/0/Power": round(self.voltage * self.current),
        }
