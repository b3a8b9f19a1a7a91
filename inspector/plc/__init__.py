"""PLC interfaces of the station: clients of `inspector.station.StationController`.

`modbus_server.ModbusPlcServer` (Modbus TCP, pymodbus) and `opcua_server.OpcUaServer` (OPC UA,
asyncua); each runs its own event loop on its own thread and is started by `inspector serve`."""
