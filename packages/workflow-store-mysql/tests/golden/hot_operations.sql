-- create_run: 1 round trip(s)
INSERT INTO {schema}.workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at) VALUES (%(p_run_id)s, %(p_workflow_id)s, %(p_workflow_version)s, %(p_status)s, %(p_input)s, %(p_lease_token)s, %(p_next_event_index)s, %(p_created_at)s, %(p_updated_at)s, %(p_ready_at)s);

-- claim_run: 5 round trip(s)
BEGIN;
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s FOR UPDATE;
UPDATE {schema}.workflow_runs SET updated_at=CASE WHEN ({schema}.workflow_runs.status = %(status_1)s) THEN {schema}.workflow_runs.updated_at ELSE %(p_now)s END, status=%(status)s, lease_owner=%(p_owner)s, lease_token=({schema}.workflow_runs.lease_token + %(lease_token_1)s), lease_expires_at=%(p_expires_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s;
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, (SELECT JSON_ARRAYAGG(JSON_ARRAY(CAST({schema}.workflow_inbox.kind AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.`key` AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.name AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.step_id AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.payload AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.meta AS CHAR CHARACTER SET utf8mb4), {schema}.workflow_inbox.received_at, {schema}.workflow_inbox.consumed)) AS `JSON_ARRAYAGG_1` 
FROM {schema}.workflow_inbox 
WHERE {schema}.workflow_inbox.run_id = {schema}.workflow_runs.run_id AND {schema}.workflow_inbox.consumed = false) AS inbox_json 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id IN (%(p_id0)s);
COMMIT;

-- heartbeat: 1 round trip(s)
UPDATE {schema}.workflow_runs SET lease_expires_at=%(p_expires_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND {schema}.workflow_runs.lease_owner = %(p_owner)s AND {schema}.workflow_runs.lease_token = %(p_token)s;

-- append_events_1: 4 round trip(s)
BEGIN;
UPDATE {schema}.workflow_runs SET next_event_index=%(p_next)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND {schema}.workflow_runs.lease_owner = %(p_owner)s AND {schema}.workflow_runs.lease_token = %(p_token)s AND {schema}.workflow_runs.next_event_index = %(p_expected)s;
INSERT INTO {schema}.workflow_events (run_id, event_index, type, step_id, data, created_at) VALUES (%(p_run_id)s, %(p_event_index)s, %(p_type)s, %(p_step_id)s, %(p_data)s, %(p_created_at)s);
COMMIT;

-- append_events_10: 4 round trip(s)
BEGIN;
UPDATE {schema}.workflow_runs SET next_event_index=%(p_next)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND {schema}.workflow_runs.lease_owner = %(p_owner)s AND {schema}.workflow_runs.lease_token = %(p_token)s AND {schema}.workflow_runs.next_event_index = %(p_expected)s;
INSERT INTO {schema}.workflow_events (run_id, event_index, type, step_id, data, created_at) VALUES (%(p_run_id)s, %(p_event_index)s, %(p_type)s, %(p_step_id)s, %(p_data)s, %(p_created_at)s);
COMMIT;

-- settle_run: 5 round trip(s)
BEGIN;
UPDATE {schema}.workflow_runs SET status=%(p_v_status)s, wait_kind=%(p_v_wait_kind)s, wait_step_id=%(p_v_wait_step_id)s, wait_key=%(p_v_wait_key)s, wait_meta=%(p_v_wait_meta)s, wake_at=%(p_v_wake_at)s, lease_owner=%(p_v_lease_owner)s, lease_expires_at=%(p_v_lease_expires_at)s, next_event_index=%(p_v_next_event_index)s, updated_at=%(p_v_updated_at)s, ready_at=%(p_v_ready_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND {schema}.workflow_runs.lease_owner = %(p_owner)s AND {schema}.workflow_runs.lease_token = %(p_token)s AND {schema}.workflow_runs.next_event_index = %(p_expected)s;
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s;
UPDATE {schema}.workflow_runs SET status=%(p_q_status)s, wait_kind=%(p_q_wait_kind)s, wait_step_id=%(p_q_wait_step_id)s, wait_key=%(p_q_wait_key)s, wait_meta=%(p_q_wait_meta)s, wake_at=%(p_q_wake_at)s, updated_at=%(p_q_updated_at)s, ready_at=%(p_q_ready_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s AND (EXISTS (SELECT * 
FROM {schema}.workflow_inbox 
WHERE {schema}.workflow_inbox.run_id = %(p_run_id)s AND {schema}.workflow_inbox.consumed = false AND ({schema}.workflow_inbox.kind = %(kind_1)s AND {schema}.workflow_inbox.`key` = %(p_wait_step_id)s OR {schema}.workflow_inbox.kind = %(kind_2)s AND {schema}.workflow_inbox.name = %(p_wait_key)s AND ({schema}.workflow_inbox.step_id IS NULL OR {schema}.workflow_inbox.step_id = %(p_wait_step_id)s))));
COMMIT;

-- fire_due_timers: 5 round trip(s)
BEGIN;
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wake_at 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.wake_at IS NOT NULL AND {schema}.workflow_runs.wake_at <= %(p_now)s ORDER BY {schema}.workflow_runs.wake_at, {schema}.workflow_runs.run_id 
 LIMIT %(p_limit)s FOR UPDATE SKIP LOCKED;
INSERT INTO {schema}.workflow_inbox (run_id, kind, `key`, name, step_id, payload, meta, received_at, consumed) VALUES (%(p_run_id)s, %(p_kind)s, %(p_key)s, %(p_name)s, %(p_step_id)s, %(p_payload)s, %(p_meta)s, %(p_received_at)s, %(p_consumed)s) ON DUPLICATE KEY UPDATE name = VALUES(name), payload = VALUES(payload), meta = VALUES(meta), received_at = VALUES(received_at), consumed = VALUES(consumed);
UPDATE {schema}.workflow_runs SET status=%(p_q_status)s, wait_kind=%(p_q_wait_kind)s, wait_step_id=%(p_q_wait_step_id)s, wait_key=%(p_q_wait_key)s, wait_meta=%(p_q_wait_meta)s, wake_at=%(p_q_wake_at)s, updated_at=%(p_q_updated_at)s, ready_at=%(p_q_ready_at)s WHERE {schema}.workflow_runs.run_id IN (%(p_id0)s);
COMMIT;

-- deliver_signal: 5 round trip(s)
BEGIN;
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, seen.kind AS seen_kind, seen.`key` AS seen_key, seen.name AS seen_name, seen.step_id AS seen_step_id, seen.payload AS seen_payload, seen.meta AS seen_meta, seen.received_at AS seen_received_at, seen.consumed AS seen_consumed 
FROM {schema}.workflow_runs LEFT OUTER JOIN {schema}.workflow_inbox AS seen ON seen.run_id = {schema}.workflow_runs.run_id AND seen.kind = %(p_kind)s AND seen.`key` = %(p_key)s 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s FOR UPDATE;
INSERT INTO {schema}.workflow_inbox (run_id, kind, `key`, name, step_id, payload, meta, received_at, consumed) VALUES (%(p_run_id)s, %(p_kind)s, %(p_key)s, %(p_name)s, %(p_step_id)s, %(p_payload)s, %(p_meta)s, %(p_received_at)s, %(p_consumed)s);
UPDATE {schema}.workflow_runs SET status=%(p_q_status)s, wait_kind=%(p_q_wait_kind)s, wait_step_id=%(p_q_wait_step_id)s, wait_key=%(p_q_wait_key)s, wait_meta=%(p_q_wait_meta)s, wake_at=%(p_q_wake_at)s, updated_at=%(p_q_updated_at)s, ready_at=%(p_q_ready_at)s WHERE {schema}.workflow_runs.run_id = %(p_run_id)s;
COMMIT;

-- claim_runnable: 5 round trip(s)
BEGIN;
SELECT {schema}.workflow_runs.run_id 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.ready_at IS NOT NULL AND ({schema}.workflow_runs.status = %(status_1)s OR {schema}.workflow_runs.status = %(status_2)s AND {schema}.workflow_runs.lease_expires_at <= %(p_now)s) ORDER BY {schema}.workflow_runs.ready_at, {schema}.workflow_runs.run_id 
 LIMIT %(p_limit)s FOR UPDATE SKIP LOCKED;
UPDATE {schema}.workflow_runs SET updated_at=CASE WHEN ({schema}.workflow_runs.status = %(status_1)s) THEN {schema}.workflow_runs.updated_at ELSE %(p_now)s END, status=%(status)s, lease_owner=%(p_owner)s, lease_token=({schema}.workflow_runs.lease_token + %(lease_token_1)s), lease_expires_at=%(p_expires_at)s WHERE {schema}.workflow_runs.run_id IN (%(p_id0)s, %(p_id1)s, %(p_id2)s);
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at, (SELECT JSON_ARRAYAGG(JSON_ARRAY(CAST({schema}.workflow_inbox.kind AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.`key` AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.name AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.step_id AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.payload AS CHAR CHARACTER SET utf8mb4), CAST({schema}.workflow_inbox.meta AS CHAR CHARACTER SET utf8mb4), {schema}.workflow_inbox.received_at, {schema}.workflow_inbox.consumed)) AS `JSON_ARRAYAGG_1` 
FROM {schema}.workflow_inbox 
WHERE {schema}.workflow_inbox.run_id = {schema}.workflow_runs.run_id AND {schema}.workflow_inbox.consumed = false) AS inbox_json 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id IN (%(p_id0)s, %(p_id1)s, %(p_id2)s);
COMMIT;

-- fire_due_schedules: 5 round trip(s)
BEGIN;
SELECT {schema}.workflow_schedules.schedule_id, {schema}.workflow_schedules.workflow_id, {schema}.workflow_schedules.workflow_version, {schema}.workflow_schedules.spec, {schema}.workflow_schedules.overlap, {schema}.workflow_schedules.input, {schema}.workflow_schedules.enabled, {schema}.workflow_schedules.next_fire_at, {schema}.workflow_schedules.last_fired_at, {schema}.workflow_schedules.last_run_id, {schema}.workflow_schedules.updated_at, (SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = {schema}.workflow_schedules.last_run_id) IS NOT NULL AND (SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = {schema}.workflow_schedules.last_run_id) IN (%(param_1)s, %(param_2)s, %(param_3)s) AS busy 
FROM {schema}.workflow_schedules 
WHERE {schema}.workflow_schedules.enabled = true AND {schema}.workflow_schedules.next_fire_at <= %(p_now)s AND NOT ({schema}.workflow_schedules.overlap = %(overlap_1)s AND (SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = {schema}.workflow_schedules.last_run_id) IS NOT NULL AND (SELECT {schema}.workflow_runs.status 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = {schema}.workflow_schedules.last_run_id) IN (%(param_1)s, %(param_2)s, %(param_3)s)) ORDER BY {schema}.workflow_schedules.next_fire_at, {schema}.workflow_schedules.schedule_id 
 LIMIT %(p_limit)s FOR UPDATE SKIP LOCKED;
INSERT INTO {schema}.workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at) VALUES (%(p_run_id)s, %(p_workflow_id)s, %(p_workflow_version)s, %(p_status)s, %(p_input)s, %(p_lease_token)s, %(p_next_event_index)s, %(p_created_at)s, %(p_updated_at)s, %(p_ready_at)s) ON DUPLICATE KEY UPDATE run_id = VALUES(run_id);
UPDATE {schema}.workflow_schedules SET next_fire_at=CASE WHEN ({schema}.workflow_schedules.schedule_id = %(p_sid0)s) THEN %(p_nfa0)s WHEN ({schema}.workflow_schedules.schedule_id = %(p_sid1)s) THEN %(p_nfa1)s ELSE {schema}.workflow_schedules.next_fire_at END, last_fired_at=CASE WHEN ({schema}.workflow_schedules.schedule_id = %(p_sid0)s) THEN %(p_lfa0)s WHEN ({schema}.workflow_schedules.schedule_id = %(p_sid1)s) THEN %(p_lfa1)s ELSE {schema}.workflow_schedules.last_fired_at END, last_run_id=CASE WHEN ({schema}.workflow_schedules.schedule_id = %(p_sid0)s) THEN %(p_lri0)s WHEN ({schema}.workflow_schedules.schedule_id = %(p_sid1)s) THEN %(p_lri1)s ELSE {schema}.workflow_schedules.last_run_id END WHERE {schema}.workflow_schedules.schedule_id IN (%(p_sid0)s, %(p_sid1)s);
COMMIT;

-- list_runs: 1 round trip(s)
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at 
FROM {schema}.workflow_runs ORDER BY {schema}.workflow_runs.created_at DESC, {schema}.workflow_runs.run_id DESC 
 LIMIT %(p_limit)s;

-- load_run: 1 round trip(s)
SELECT {schema}.workflow_runs.run_id, {schema}.workflow_runs.workflow_id, {schema}.workflow_runs.workflow_version, {schema}.workflow_runs.status, {schema}.workflow_runs.input, {schema}.workflow_runs.output, {schema}.workflow_runs.error, {schema}.workflow_runs.wait_kind, {schema}.workflow_runs.wait_step_id, {schema}.workflow_runs.wait_key, {schema}.workflow_runs.wait_meta, {schema}.workflow_runs.wake_at, {schema}.workflow_runs.lease_owner, {schema}.workflow_runs.lease_token, {schema}.workflow_runs.lease_expires_at, {schema}.workflow_runs.next_event_index, {schema}.workflow_runs.created_at, {schema}.workflow_runs.updated_at, {schema}.workflow_runs.ready_at 
FROM {schema}.workflow_runs 
WHERE {schema}.workflow_runs.run_id = %(p_run_id)s;
