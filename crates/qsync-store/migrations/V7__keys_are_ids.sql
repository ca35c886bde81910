-- QSync 2: a device's id is its public key, proven in every connection's Noise handshake,
-- so the link keys older builds agreed at pairing mean nothing now, and the random ids
-- they were stored under are not keys. Every link is dropped (the daemon says so when it
-- starts on such a state folder): devices must be linked again. Tasks and files stay.
DELETE FROM peer_progress;
DELETE FROM pending;
DROP TABLE task_links;
DROP TABLE linked_devices;

-- Devices this one is linked with, for any task: the id is the device's public key.
CREATE TABLE linked_devices (
    device_id    BLOB PRIMARY KEY CHECK (length(device_id) = 32),
    name         TEXT NOT NULL,
    last_address TEXT,
    is_connected INTEGER NOT NULL DEFAULT 0
);

-- Which device is linked to which task.
CREATE TABLE task_links (
    task_id          BLOB NOT NULL REFERENCES sync_tasks (task_id) ON DELETE CASCADE,
    device_id        BLOB NOT NULL REFERENCES linked_devices (device_id) ON DELETE CASCADE,
    receiving_update INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (task_id, device_id)
);
