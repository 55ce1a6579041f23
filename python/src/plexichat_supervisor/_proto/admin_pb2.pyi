from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TrustState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TRUST_STATE_UNSPECIFIED: _ClassVar[TrustState]
    TRUST_STATE_PROPOSED: _ClassVar[TrustState]
    TRUST_STATE_TRUSTED: _ClassVar[TrustState]
    TRUST_STATE_REMOVED: _ClassVar[TrustState]
    TRUST_STATE_REVOKED: _ClassVar[TrustState]

class RuntimeKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUNTIME_KIND_UNSPECIFIED: _ClassVar[RuntimeKind]
    RUNTIME_KIND_NATIVE: _ClassVar[RuntimeKind]
    RUNTIME_KIND_PYTHON3: _ClassVar[RuntimeKind]

class UploadIntent(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UPLOAD_INTENT_UNSPECIFIED: _ClassVar[UploadIntent]
    UPLOAD_INTENT_INSTALL: _ClassVar[UploadIntent]
    UPLOAD_INTENT_UPDATE: _ClassVar[UploadIntent]

class EntryKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENTRY_KIND_UNSPECIFIED: _ClassVar[EntryKind]
    ENTRY_KIND_DIRECTORY: _ClassVar[EntryKind]
    ENTRY_KIND_FILE: _ClassVar[EntryKind]

class PluginState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PLUGIN_STATE_UNSPECIFIED: _ClassVar[PluginState]
    PLUGIN_STATE_DISABLED: _ClassVar[PluginState]
    PLUGIN_STATE_ENABLED: _ClassVar[PluginState]
    PLUGIN_STATE_QUARANTINED: _ClassVar[PluginState]
    PLUGIN_STATE_CHANGES_REQUESTED: _ClassVar[PluginState]

class RuntimePhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUNTIME_PHASE_UNSPECIFIED: _ClassVar[RuntimePhase]
    RUNTIME_PHASE_STARTING: _ClassVar[RuntimePhase]
    RUNTIME_PHASE_RUNNING: _ClassVar[RuntimePhase]
    RUNTIME_PHASE_BACKOFF: _ClassVar[RuntimePhase]
    RUNTIME_PHASE_STOPPING: _ClassVar[RuntimePhase]
    RUNTIME_PHASE_STOPPED: _ClassVar[RuntimePhase]

class Role(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROLE_UNSPECIFIED: _ClassVar[Role]
    ROLE_ADMIN: _ClassVar[Role]
    ROLE_SERVER: _ClassVar[Role]
    ROLE_VIEWER: _ClassVar[Role]
    ROLE_SYSTEM: _ClassVar[Role]
    ROLE_PLUGIN: _ClassVar[Role]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_OK: _ClassVar[Outcome]
    OUTCOME_DENIED: _ClassVar[Outcome]
    OUTCOME_FAILED: _ClassVar[Outcome]

class Risk(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RISK_UNSPECIFIED: _ClassVar[Risk]
    RISK_LOW: _ClassVar[Risk]
    RISK_MEDIUM: _ClassVar[Risk]
    RISK_HIGH: _ClassVar[Risk]
    RISK_CRITICAL: _ClassVar[Risk]

class PermissionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERMISSION_STATUS_UNSPECIFIED: _ClassVar[PermissionStatus]
    PERMISSION_STATUS_PENDING: _ClassVar[PermissionStatus]
    PERMISSION_STATUS_GRANTED: _ClassVar[PermissionStatus]
    PERMISSION_STATUS_DENIED: _ClassVar[PermissionStatus]
    PERMISSION_STATUS_REVOKED: _ClassVar[PermissionStatus]
    PERMISSION_STATUS_EXPIRED: _ClassVar[PermissionStatus]

class NotificationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NOTIFICATION_KIND_UNSPECIFIED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_APPROVAL_REQUIRED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_CHANGES_REQUESTED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_PLUGIN_START_REFUSED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_PLUGIN_CRASHED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_PLUGIN_QUARANTINED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_SECCOMP_VIOLATION: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_OOM_KILL: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_PIDS_MAX: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_PERMISSION_EXPIRED: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_ALERT: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_EMERGENCY: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_SAFE_MODE: _ClassVar[NotificationKind]
    NOTIFICATION_KIND_BACKUP_RESTORED: _ClassVar[NotificationKind]

class SettingType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SETTING_TYPE_UNSPECIFIED: _ClassVar[SettingType]
    SETTING_TYPE_STRING: _ClassVar[SettingType]
    SETTING_TYPE_INTEGER: _ClassVar[SettingType]
    SETTING_TYPE_NUMBER: _ClassVar[SettingType]
    SETTING_TYPE_BOOLEAN: _ClassVar[SettingType]
    SETTING_TYPE_ENUM: _ClassVar[SettingType]
TRUST_STATE_UNSPECIFIED: TrustState
TRUST_STATE_PROPOSED: TrustState
TRUST_STATE_TRUSTED: TrustState
TRUST_STATE_REMOVED: TrustState
TRUST_STATE_REVOKED: TrustState
RUNTIME_KIND_UNSPECIFIED: RuntimeKind
RUNTIME_KIND_NATIVE: RuntimeKind
RUNTIME_KIND_PYTHON3: RuntimeKind
UPLOAD_INTENT_UNSPECIFIED: UploadIntent
UPLOAD_INTENT_INSTALL: UploadIntent
UPLOAD_INTENT_UPDATE: UploadIntent
ENTRY_KIND_UNSPECIFIED: EntryKind
ENTRY_KIND_DIRECTORY: EntryKind
ENTRY_KIND_FILE: EntryKind
PLUGIN_STATE_UNSPECIFIED: PluginState
PLUGIN_STATE_DISABLED: PluginState
PLUGIN_STATE_ENABLED: PluginState
PLUGIN_STATE_QUARANTINED: PluginState
PLUGIN_STATE_CHANGES_REQUESTED: PluginState
RUNTIME_PHASE_UNSPECIFIED: RuntimePhase
RUNTIME_PHASE_STARTING: RuntimePhase
RUNTIME_PHASE_RUNNING: RuntimePhase
RUNTIME_PHASE_BACKOFF: RuntimePhase
RUNTIME_PHASE_STOPPING: RuntimePhase
RUNTIME_PHASE_STOPPED: RuntimePhase
ROLE_UNSPECIFIED: Role
ROLE_ADMIN: Role
ROLE_SERVER: Role
ROLE_VIEWER: Role
ROLE_SYSTEM: Role
ROLE_PLUGIN: Role
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_OK: Outcome
OUTCOME_DENIED: Outcome
OUTCOME_FAILED: Outcome
RISK_UNSPECIFIED: Risk
RISK_LOW: Risk
RISK_MEDIUM: Risk
RISK_HIGH: Risk
RISK_CRITICAL: Risk
PERMISSION_STATUS_UNSPECIFIED: PermissionStatus
PERMISSION_STATUS_PENDING: PermissionStatus
PERMISSION_STATUS_GRANTED: PermissionStatus
PERMISSION_STATUS_DENIED: PermissionStatus
PERMISSION_STATUS_REVOKED: PermissionStatus
PERMISSION_STATUS_EXPIRED: PermissionStatus
NOTIFICATION_KIND_UNSPECIFIED: NotificationKind
NOTIFICATION_KIND_APPROVAL_REQUIRED: NotificationKind
NOTIFICATION_KIND_CHANGES_REQUESTED: NotificationKind
NOTIFICATION_KIND_PLUGIN_START_REFUSED: NotificationKind
NOTIFICATION_KIND_PLUGIN_CRASHED: NotificationKind
NOTIFICATION_KIND_PLUGIN_QUARANTINED: NotificationKind
NOTIFICATION_KIND_SECCOMP_VIOLATION: NotificationKind
NOTIFICATION_KIND_OOM_KILL: NotificationKind
NOTIFICATION_KIND_PIDS_MAX: NotificationKind
NOTIFICATION_KIND_PERMISSION_EXPIRED: NotificationKind
NOTIFICATION_KIND_ALERT: NotificationKind
NOTIFICATION_KIND_EMERGENCY: NotificationKind
NOTIFICATION_KIND_SAFE_MODE: NotificationKind
NOTIFICATION_KIND_BACKUP_RESTORED: NotificationKind
SETTING_TYPE_UNSPECIFIED: SettingType
SETTING_TYPE_STRING: SettingType
SETTING_TYPE_INTEGER: SettingType
SETTING_TYPE_NUMBER: SettingType
SETTING_TYPE_BOOLEAN: SettingType
SETTING_TYPE_ENUM: SettingType

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("uid", "gid", "pid", "role", "identity", "on_behalf_of")
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    uid: int
    gid: int
    pid: int
    role: Role
    identity: str
    on_behalf_of: str
    def __init__(self, uid: _Optional[int] = ..., gid: _Optional[int] = ..., pid: _Optional[int] = ..., role: _Optional[_Union[Role, str]] = ..., identity: _Optional[str] = ..., on_behalf_of: _Optional[str] = ...) -> None: ...

class InstallPluginRequest(_message.Message):
    __slots__ = ("path",)
    PATH_FIELD_NUMBER: _ClassVar[int]
    path: str
    def __init__(self, path: _Optional[str] = ...) -> None: ...

class PluginRef(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListPluginsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PluginSummary(_message.Message):
    __slots__ = ("name", "version", "state", "runtime", "core", "sha256", "pid", "restarts", "state_reason", "installed_at_ms", "signer")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    CORE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    STATE_REASON_FIELD_NUMBER: _ClassVar[int]
    INSTALLED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    state: PluginState
    runtime: RuntimePhase
    core: bool
    sha256: str
    pid: int
    restarts: int
    state_reason: str
    installed_at_ms: int
    signer: Signer
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., state: _Optional[_Union[PluginState, str]] = ..., runtime: _Optional[_Union[RuntimePhase, str]] = ..., core: _Optional[bool] = ..., sha256: _Optional[str] = ..., pid: _Optional[int] = ..., restarts: _Optional[int] = ..., state_reason: _Optional[str] = ..., installed_at_ms: _Optional[int] = ..., signer: _Optional[_Union[Signer, _Mapping]] = ...) -> None: ...

class Signer(_message.Message):
    __slots__ = ("fingerprint", "publisher", "key_state")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    KEY_STATE_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    publisher: str
    key_state: TrustState
    def __init__(self, fingerprint: _Optional[str] = ..., publisher: _Optional[str] = ..., key_state: _Optional[_Union[TrustState, str]] = ...) -> None: ...

class ListPluginsResponse(_message.Message):
    __slots__ = ("plugins",)
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    plugins: _containers.RepeatedCompositeFieldContainer[PluginSummary]
    def __init__(self, plugins: _Optional[_Iterable[_Union[PluginSummary, _Mapping]]] = ...) -> None: ...

class PermissionRecord(_message.Message):
    __slots__ = ("permission", "risk", "requested_scope", "justification", "status", "granted_scope", "approvers", "comment", "conditions", "granted_at_ms", "expires_at_ms", "revoked_at_ms", "revoked_by", "decided_by", "required_approvals")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_SCOPE_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    GRANTED_SCOPE_FIELD_NUMBER: _ClassVar[int]
    APPROVERS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    GRANTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_BY_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    permission: str
    risk: Risk
    requested_scope: _containers.RepeatedScalarFieldContainer[str]
    justification: str
    status: PermissionStatus
    granted_scope: _containers.RepeatedScalarFieldContainer[str]
    approvers: _containers.RepeatedScalarFieldContainer[str]
    comment: str
    conditions: str
    granted_at_ms: int
    expires_at_ms: int
    revoked_at_ms: int
    revoked_by: str
    decided_by: str
    required_approvals: int
    def __init__(self, permission: _Optional[str] = ..., risk: _Optional[_Union[Risk, str]] = ..., requested_scope: _Optional[_Iterable[str]] = ..., justification: _Optional[str] = ..., status: _Optional[_Union[PermissionStatus, str]] = ..., granted_scope: _Optional[_Iterable[str]] = ..., approvers: _Optional[_Iterable[str]] = ..., comment: _Optional[str] = ..., conditions: _Optional[str] = ..., granted_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ..., revoked_at_ms: _Optional[int] = ..., revoked_by: _Optional[str] = ..., decided_by: _Optional[str] = ..., required_approvals: _Optional[int] = ...) -> None: ...

class Resources(_message.Message):
    __slots__ = ("cpu", "memory_bytes", "pids")
    CPU_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    cpu: float
    memory_bytes: int
    pids: int
    def __init__(self, cpu: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ...) -> None: ...

class PluginDetail(_message.Message):
    __slots__ = ("summary", "description", "author", "entry", "permissions", "resources", "topics", "last_exit", "commands", "plugin_runtime", "imports", "imports_over_cap", "dependencies", "advisories")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    AUTHOR_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    LAST_EXIT_FIELD_NUMBER: _ClassVar[int]
    COMMANDS_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    IMPORTS_FIELD_NUMBER: _ClassVar[int]
    IMPORTS_OVER_CAP_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    ADVISORIES_FIELD_NUMBER: _ClassVar[int]
    summary: PluginSummary
    description: str
    author: str
    entry: str
    permissions: _containers.RepeatedCompositeFieldContainer[PermissionRecord]
    resources: Resources
    topics: _containers.RepeatedScalarFieldContainer[str]
    last_exit: str
    commands: _containers.RepeatedCompositeFieldContainer[DeclaredCommand]
    plugin_runtime: PluginRuntime
    imports: _containers.RepeatedCompositeFieldContainer[ImportRecord]
    imports_over_cap: int
    dependencies: DependencyInventory
    advisories: _containers.RepeatedCompositeFieldContainer[AdvisoryFinding]
    def __init__(self, summary: _Optional[_Union[PluginSummary, _Mapping]] = ..., description: _Optional[str] = ..., author: _Optional[str] = ..., entry: _Optional[str] = ..., permissions: _Optional[_Iterable[_Union[PermissionRecord, _Mapping]]] = ..., resources: _Optional[_Union[Resources, _Mapping]] = ..., topics: _Optional[_Iterable[str]] = ..., last_exit: _Optional[str] = ..., commands: _Optional[_Iterable[_Union[DeclaredCommand, _Mapping]]] = ..., plugin_runtime: _Optional[_Union[PluginRuntime, _Mapping]] = ..., imports: _Optional[_Iterable[_Union[ImportRecord, _Mapping]]] = ..., imports_over_cap: _Optional[int] = ..., dependencies: _Optional[_Union[DependencyInventory, _Mapping]] = ..., advisories: _Optional[_Iterable[_Union[AdvisoryFinding, _Mapping]]] = ...) -> None: ...

class DependencyInventory(_message.Message):
    __slots__ = ("known", "note", "dependencies")
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    NOTE_FIELD_NUMBER: _ClassVar[int]
    DEPENDENCIES_FIELD_NUMBER: _ClassVar[int]
    known: bool
    note: str
    dependencies: _containers.RepeatedCompositeFieldContainer[Dependency]
    def __init__(self, known: _Optional[bool] = ..., note: _Optional[str] = ..., dependencies: _Optional[_Iterable[_Union[Dependency, _Mapping]]] = ...) -> None: ...

class Dependency(_message.Message):
    __slots__ = ("ecosystem", "name", "version")
    ECOSYSTEM_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ecosystem: str
    name: str
    version: str
    def __init__(self, ecosystem: _Optional[str] = ..., name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class AdvisoryFinding(_message.Message):
    __slots__ = ("advisory_id", "ecosystem", "package", "version", "title", "severity", "patched", "informational", "url", "aliases")
    ADVISORY_ID_FIELD_NUMBER: _ClassVar[int]
    ECOSYSTEM_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    PATCHED_FIELD_NUMBER: _ClassVar[int]
    INFORMATIONAL_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    advisory_id: str
    ecosystem: str
    package: str
    version: str
    title: str
    severity: str
    patched: str
    informational: str
    url: str
    aliases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, advisory_id: _Optional[str] = ..., ecosystem: _Optional[str] = ..., package: _Optional[str] = ..., version: _Optional[str] = ..., title: _Optional[str] = ..., severity: _Optional[str] = ..., patched: _Optional[str] = ..., informational: _Optional[str] = ..., url: _Optional[str] = ..., aliases: _Optional[_Iterable[str]] = ...) -> None: ...

class PluginRuntime(_message.Message):
    __slots__ = ("kind", "package_digest", "interpreter", "interpreter_version", "interpreter_sha256", "sdk_digest", "files")
    KIND_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_DIGEST_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_VERSION_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_SHA256_FIELD_NUMBER: _ClassVar[int]
    SDK_DIGEST_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    kind: RuntimeKind
    package_digest: str
    interpreter: str
    interpreter_version: str
    interpreter_sha256: str
    sdk_digest: str
    files: _containers.RepeatedCompositeFieldContainer[PackageFile]
    def __init__(self, kind: _Optional[_Union[RuntimeKind, str]] = ..., package_digest: _Optional[str] = ..., interpreter: _Optional[str] = ..., interpreter_version: _Optional[str] = ..., interpreter_sha256: _Optional[str] = ..., sdk_digest: _Optional[str] = ..., files: _Optional[_Iterable[_Union[PackageFile, _Mapping]]] = ...) -> None: ...

class PackageFile(_message.Message):
    __slots__ = ("path", "mode", "size", "sha256")
    PATH_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    path: str
    mode: int
    size: int
    sha256: str
    def __init__(self, path: _Optional[str] = ..., mode: _Optional[int] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class ImportRecord(_message.Message):
    __slots__ = ("name", "origin", "at_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    origin: str
    at_ms: int
    def __init__(self, name: _Optional[str] = ..., origin: _Optional[str] = ..., at_ms: _Optional[int] = ...) -> None: ...

class ListPendingRequest(_message.Message):
    __slots__ = ("expiring_within_secs",)
    EXPIRING_WITHIN_SECS_FIELD_NUMBER: _ClassVar[int]
    expiring_within_secs: int
    def __init__(self, expiring_within_secs: _Optional[int] = ...) -> None: ...

class PendingRequest(_message.Message):
    __slots__ = ("plugin", "plugin_version", "permission", "signer")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_VERSION_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    plugin_version: str
    permission: PermissionRecord
    signer: Signer
    def __init__(self, plugin: _Optional[str] = ..., plugin_version: _Optional[str] = ..., permission: _Optional[_Union[PermissionRecord, _Mapping]] = ..., signer: _Optional[_Union[Signer, _Mapping]] = ...) -> None: ...

class ListPendingResponse(_message.Message):
    __slots__ = ("pending",)
    PENDING_FIELD_NUMBER: _ClassVar[int]
    pending: _containers.RepeatedCompositeFieldContainer[PendingRequest]
    def __init__(self, pending: _Optional[_Iterable[_Union[PendingRequest, _Mapping]]] = ...) -> None: ...

class DecisionRequest(_message.Message):
    __slots__ = ("name", "permissions", "comment", "expires_at_ms", "expires_in_secs", "scope")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_SECS_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    permissions: _containers.RepeatedScalarFieldContainer[str]
    comment: str
    expires_at_ms: int
    expires_in_secs: int
    scope: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., permissions: _Optional[_Iterable[str]] = ..., comment: _Optional[str] = ..., expires_at_ms: _Optional[int] = ..., expires_in_secs: _Optional[int] = ..., scope: _Optional[_Iterable[str]] = ...) -> None: ...

class DecisionResponse(_message.Message):
    __slots__ = ("decided",)
    DECIDED_FIELD_NUMBER: _ClassVar[int]
    decided: _containers.RepeatedCompositeFieldContainer[PermissionRecord]
    def __init__(self, decided: _Optional[_Iterable[_Union[PermissionRecord, _Mapping]]] = ...) -> None: ...

class DisablePluginRequest(_message.Message):
    __slots__ = ("name", "force")
    NAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    name: str
    force: bool
    def __init__(self, name: _Optional[str] = ..., force: _Optional[bool] = ...) -> None: ...

class RepinRuntimeRequest(_message.Message):
    __slots__ = ("name", "comment")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    comment: str
    def __init__(self, name: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class RemovePluginResponse(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class AuditQuery(_message.Message):
    __slots__ = ("plugin", "since_ms", "limit", "before_id", "page_size")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    since_ms: int
    limit: int
    before_id: int
    page_size: int
    def __init__(self, plugin: _Optional[str] = ..., since_ms: _Optional[int] = ..., limit: _Optional[int] = ..., before_id: _Optional[int] = ..., page_size: _Optional[int] = ...) -> None: ...

class AuditRecord(_message.Message):
    __slots__ = ("id", "ts_ms", "actor", "on_behalf_of", "action", "plugin", "permission", "outcome", "before", "after", "detail")
    ID_FIELD_NUMBER: _ClassVar[int]
    TS_MS_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    ON_BEHALF_OF_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    id: int
    ts_ms: int
    actor: str
    on_behalf_of: str
    action: str
    plugin: str
    permission: str
    outcome: Outcome
    before: str
    after: str
    detail: _struct_pb2.Value
    def __init__(self, id: _Optional[int] = ..., ts_ms: _Optional[int] = ..., actor: _Optional[str] = ..., on_behalf_of: _Optional[str] = ..., action: _Optional[str] = ..., plugin: _Optional[str] = ..., permission: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., before: _Optional[str] = ..., after: _Optional[str] = ..., detail: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class AuditResponse(_message.Message):
    __slots__ = ("records", "next_before_id")
    RECORDS_FIELD_NUMBER: _ClassVar[int]
    NEXT_BEFORE_ID_FIELD_NUMBER: _ClassVar[int]
    records: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    next_before_id: int
    def __init__(self, records: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., next_before_id: _Optional[int] = ...) -> None: ...

class PublishEventRequest(_message.Message):
    __slots__ = ("topic", "payload")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    topic: str
    payload: bytes
    def __init__(self, topic: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class PublishEventResponse(_message.Message):
    __slots__ = ("id", "delivered_to")
    ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERED_TO_FIELD_NUMBER: _ClassVar[int]
    id: str
    delivered_to: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, id: _Optional[str] = ..., delivered_to: _Optional[_Iterable[str]] = ...) -> None: ...

class InvokeCommandRequest(_message.Message):
    __slots__ = ("plugin", "command", "args", "timeout_ms")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    command: str
    args: bytes
    timeout_ms: int
    def __init__(self, plugin: _Optional[str] = ..., command: _Optional[str] = ..., args: _Optional[bytes] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class InvokeCommandResponse(_message.Message):
    __slots__ = ("output", "elapsed_us")
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ELAPSED_US_FIELD_NUMBER: _ClassVar[int]
    output: bytes
    elapsed_us: int
    def __init__(self, output: _Optional[bytes] = ..., elapsed_us: _Optional[int] = ...) -> None: ...

class WatchEventsRequest(_message.Message):
    __slots__ = ("topics",)
    TOPICS_FIELD_NUMBER: _ClassVar[int]
    topics: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, topics: _Optional[_Iterable[str]] = ...) -> None: ...

class PluginEvent(_message.Message):
    __slots__ = ("id", "topic", "payload", "plugin", "timestamp_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    topic: str
    payload: bytes
    plugin: str
    timestamp_ms: int
    def __init__(self, id: _Optional[str] = ..., topic: _Optional[str] = ..., payload: _Optional[bytes] = ..., plugin: _Optional[str] = ..., timestamp_ms: _Optional[int] = ...) -> None: ...

class WatchNotificationsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Notification(_message.Message):
    __slots__ = ("ts_ms", "kind", "plugin", "message")
    TS_MS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ts_ms: int
    kind: NotificationKind
    plugin: str
    message: str
    def __init__(self, ts_ms: _Optional[int] = ..., kind: _Optional[_Union[NotificationKind, str]] = ..., plugin: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class SecurityStatusRequest(_message.Message):
    __slots__ = ("plugin",)
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    def __init__(self, plugin: _Optional[str] = ...) -> None: ...

class HostSecurity(_message.Message):
    __slots__ = ("confinement", "cgroup_version", "landlock_abi", "landlock_minimum", "seccomp_policy", "seccomp_syscalls", "seccomp_source", "refusal", "safe_mode", "inherited_seccomp_filters", "require_signature", "trusted_keys")
    CONFINEMENT_FIELD_NUMBER: _ClassVar[int]
    CGROUP_VERSION_FIELD_NUMBER: _ClassVar[int]
    LANDLOCK_ABI_FIELD_NUMBER: _ClassVar[int]
    LANDLOCK_MINIMUM_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_POLICY_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_SYSCALLS_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_SOURCE_FIELD_NUMBER: _ClassVar[int]
    REFUSAL_FIELD_NUMBER: _ClassVar[int]
    SAFE_MODE_FIELD_NUMBER: _ClassVar[int]
    INHERITED_SECCOMP_FILTERS_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    TRUSTED_KEYS_FIELD_NUMBER: _ClassVar[int]
    confinement: bool
    cgroup_version: str
    landlock_abi: int
    landlock_minimum: int
    seccomp_policy: str
    seccomp_syscalls: int
    seccomp_source: str
    refusal: str
    safe_mode: bool
    inherited_seccomp_filters: int
    require_signature: bool
    trusted_keys: int
    def __init__(self, confinement: _Optional[bool] = ..., cgroup_version: _Optional[str] = ..., landlock_abi: _Optional[int] = ..., landlock_minimum: _Optional[int] = ..., seccomp_policy: _Optional[str] = ..., seccomp_syscalls: _Optional[int] = ..., seccomp_source: _Optional[str] = ..., refusal: _Optional[str] = ..., safe_mode: _Optional[bool] = ..., inherited_seccomp_filters: _Optional[int] = ..., require_signature: _Optional[bool] = ..., trusted_keys: _Optional[int] = ...) -> None: ...

class PluginSecurity(_message.Message):
    __slots__ = ("name", "runtime", "confined", "namespaces", "uid", "gid", "rootfs", "capabilities", "no_new_privs", "landlock_abi", "landlock_status", "landlock_net_denied", "landlock_scoped", "seccomp_policy", "seccomp_syscalls", "cgroup_version", "cgroup_path", "cpu_limit", "memory_limit", "pids_limit", "cpu_usec", "memory_bytes", "pids", "plugin_pid", "plugin_runtime", "signer")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    CONFINED_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GID_FIELD_NUMBER: _ClassVar[int]
    ROOTFS_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    NO_NEW_PRIVS_FIELD_NUMBER: _ClassVar[int]
    LANDLOCK_ABI_FIELD_NUMBER: _ClassVar[int]
    LANDLOCK_STATUS_FIELD_NUMBER: _ClassVar[int]
    LANDLOCK_NET_DENIED_FIELD_NUMBER: _ClassVar[int]
    LANDLOCK_SCOPED_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_POLICY_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_SYSCALLS_FIELD_NUMBER: _ClassVar[int]
    CGROUP_VERSION_FIELD_NUMBER: _ClassVar[int]
    CGROUP_PATH_FIELD_NUMBER: _ClassVar[int]
    CPU_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CPU_USEC_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_PID_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_RUNTIME_FIELD_NUMBER: _ClassVar[int]
    SIGNER_FIELD_NUMBER: _ClassVar[int]
    name: str
    runtime: RuntimePhase
    confined: bool
    namespaces: _containers.RepeatedScalarFieldContainer[str]
    uid: int
    gid: int
    rootfs: str
    capabilities: str
    no_new_privs: bool
    landlock_abi: int
    landlock_status: str
    landlock_net_denied: bool
    landlock_scoped: bool
    seccomp_policy: str
    seccomp_syscalls: int
    cgroup_version: str
    cgroup_path: str
    cpu_limit: float
    memory_limit: int
    pids_limit: int
    cpu_usec: int
    memory_bytes: int
    pids: int
    plugin_pid: int
    plugin_runtime: PluginRuntime
    signer: Signer
    def __init__(self, name: _Optional[str] = ..., runtime: _Optional[_Union[RuntimePhase, str]] = ..., confined: _Optional[bool] = ..., namespaces: _Optional[_Iterable[str]] = ..., uid: _Optional[int] = ..., gid: _Optional[int] = ..., rootfs: _Optional[str] = ..., capabilities: _Optional[str] = ..., no_new_privs: _Optional[bool] = ..., landlock_abi: _Optional[int] = ..., landlock_status: _Optional[str] = ..., landlock_net_denied: _Optional[bool] = ..., landlock_scoped: _Optional[bool] = ..., seccomp_policy: _Optional[str] = ..., seccomp_syscalls: _Optional[int] = ..., cgroup_version: _Optional[str] = ..., cgroup_path: _Optional[str] = ..., cpu_limit: _Optional[float] = ..., memory_limit: _Optional[int] = ..., pids_limit: _Optional[int] = ..., cpu_usec: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ..., plugin_pid: _Optional[int] = ..., plugin_runtime: _Optional[_Union[PluginRuntime, _Mapping]] = ..., signer: _Optional[_Union[Signer, _Mapping]] = ...) -> None: ...

class SecurityStatusResponse(_message.Message):
    __slots__ = ("host", "plugins", "open_alerts", "fd_budget")
    HOST_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ALERTS_FIELD_NUMBER: _ClassVar[int]
    FD_BUDGET_FIELD_NUMBER: _ClassVar[int]
    host: HostSecurity
    plugins: _containers.RepeatedCompositeFieldContainer[PluginSecurity]
    open_alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    fd_budget: FdBudget
    def __init__(self, host: _Optional[_Union[HostSecurity, _Mapping]] = ..., plugins: _Optional[_Iterable[_Union[PluginSecurity, _Mapping]]] = ..., open_alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., fd_budget: _Optional[_Union[FdBudget, _Mapping]] = ...) -> None: ...

class FdBudget(_message.Message):
    __slots__ = ("limit", "in_use", "at_start", "reserved", "per_plugin", "plugins", "affordable")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    IN_USE_FIELD_NUMBER: _ClassVar[int]
    AT_START_FIELD_NUMBER: _ClassVar[int]
    RESERVED_FIELD_NUMBER: _ClassVar[int]
    PER_PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    AFFORDABLE_FIELD_NUMBER: _ClassVar[int]
    limit: int
    in_use: int
    at_start: int
    reserved: int
    per_plugin: int
    plugins: int
    affordable: int
    def __init__(self, limit: _Optional[int] = ..., in_use: _Optional[int] = ..., at_start: _Optional[int] = ..., reserved: _Optional[int] = ..., per_plugin: _Optional[int] = ..., plugins: _Optional[int] = ..., affordable: _Optional[int] = ...) -> None: ...

class RevokeRequest(_message.Message):
    __slots__ = ("permission", "plugin", "all", "comment")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    permission: str
    plugin: str
    all: bool
    comment: str
    def __init__(self, permission: _Optional[str] = ..., plugin: _Optional[str] = ..., all: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class RevokedGrant(_message.Message):
    __slots__ = ("plugin", "permission")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    permission: PermissionRecord
    def __init__(self, plugin: _Optional[str] = ..., permission: _Optional[_Union[PermissionRecord, _Mapping]] = ...) -> None: ...

class RevokeResponse(_message.Message):
    __slots__ = ("revoked",)
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    revoked: _containers.RepeatedCompositeFieldContainer[RevokedGrant]
    def __init__(self, revoked: _Optional[_Iterable[_Union[RevokedGrant, _Mapping]]] = ...) -> None: ...

class HostActionCall(_message.Message):
    __slots__ = ("id", "plugin", "permission", "target", "action", "payload", "deadline_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    plugin: str
    permission: str
    target: str
    action: str
    payload: bytes
    deadline_ms: int
    def __init__(self, id: _Optional[str] = ..., plugin: _Optional[str] = ..., permission: _Optional[str] = ..., target: _Optional[str] = ..., action: _Optional[str] = ..., payload: _Optional[bytes] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class HostActionResult(_message.Message):
    __slots__ = ("id", "ok", "result", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    ok: bool
    result: bytes
    error: str
    def __init__(self, id: _Optional[str] = ..., ok: _Optional[bool] = ..., result: _Optional[bytes] = ..., error: _Optional[str] = ...) -> None: ...

class AuditReportRequest(_message.Message):
    __slots__ = ("month", "plugin")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    month: str
    plugin: str
    def __init__(self, month: _Optional[str] = ..., plugin: _Optional[str] = ...) -> None: ...

class PluginReport(_message.Message):
    __slots__ = ("plugin", "calls", "permission_use", "denials", "denials_by_permission", "incidents", "incidents_by_kind")
    class PermissionUseEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class DenialsByPermissionEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class IncidentsByKindEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    PERMISSION_USE_FIELD_NUMBER: _ClassVar[int]
    DENIALS_FIELD_NUMBER: _ClassVar[int]
    DENIALS_BY_PERMISSION_FIELD_NUMBER: _ClassVar[int]
    INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    INCIDENTS_BY_KIND_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    calls: int
    permission_use: _containers.ScalarMap[str, int]
    denials: int
    denials_by_permission: _containers.ScalarMap[str, int]
    incidents: int
    incidents_by_kind: _containers.ScalarMap[str, int]
    def __init__(self, plugin: _Optional[str] = ..., calls: _Optional[int] = ..., permission_use: _Optional[_Mapping[str, int]] = ..., denials: _Optional[int] = ..., denials_by_permission: _Optional[_Mapping[str, int]] = ..., incidents: _Optional[int] = ..., incidents_by_kind: _Optional[_Mapping[str, int]] = ...) -> None: ...

class AuditReportResponse(_message.Message):
    __slots__ = ("month", "from_ms", "until_ms", "plugins")
    MONTH_FIELD_NUMBER: _ClassVar[int]
    FROM_MS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_MS_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    month: str
    from_ms: int
    until_ms: int
    plugins: _containers.RepeatedCompositeFieldContainer[PluginReport]
    def __init__(self, month: _Optional[str] = ..., from_ms: _Optional[int] = ..., until_ms: _Optional[int] = ..., plugins: _Optional[_Iterable[_Union[PluginReport, _Mapping]]] = ...) -> None: ...

class ReloadConfigRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReloadConfigResponse(_message.Message):
    __slots__ = ("applied", "needs_restart", "logs_reopened", "logs_error")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    NEEDS_RESTART_FIELD_NUMBER: _ClassVar[int]
    LOGS_REOPENED_FIELD_NUMBER: _ClassVar[int]
    LOGS_ERROR_FIELD_NUMBER: _ClassVar[int]
    applied: _containers.RepeatedScalarFieldContainer[str]
    needs_restart: _containers.RepeatedScalarFieldContainer[str]
    logs_reopened: bool
    logs_error: str
    def __init__(self, applied: _Optional[_Iterable[str]] = ..., needs_restart: _Optional[_Iterable[str]] = ..., logs_reopened: _Optional[bool] = ..., logs_error: _Optional[str] = ...) -> None: ...

class VerifyIntegrityRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class IntegrityCheck(_message.Message):
    __slots__ = ("name", "ok", "detail")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    name: str
    ok: bool
    detail: str
    def __init__(self, name: _Optional[str] = ..., ok: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class VerifyIntegrityResponse(_message.Message):
    __slots__ = ("ok", "checks")
    OK_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    checks: _containers.RepeatedCompositeFieldContainer[IntegrityCheck]
    def __init__(self, ok: _Optional[bool] = ..., checks: _Optional[_Iterable[_Union[IntegrityCheck, _Mapping]]] = ...) -> None: ...

class UpdatePluginRequest(_message.Message):
    __slots__ = ("name", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    path: str
    def __init__(self, name: _Optional[str] = ..., path: _Optional[str] = ...) -> None: ...

class UpdatePluginResponse(_message.Message):
    __slots__ = ("summary", "previous_version", "carried_over", "to_review", "dropped", "backup_id")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    CARRIED_OVER_FIELD_NUMBER: _ClassVar[int]
    TO_REVIEW_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    summary: PluginSummary
    previous_version: str
    carried_over: _containers.RepeatedScalarFieldContainer[str]
    to_review: _containers.RepeatedScalarFieldContainer[str]
    dropped: _containers.RepeatedScalarFieldContainer[str]
    backup_id: str
    def __init__(self, summary: _Optional[_Union[PluginSummary, _Mapping]] = ..., previous_version: _Optional[str] = ..., carried_over: _Optional[_Iterable[str]] = ..., to_review: _Optional[_Iterable[str]] = ..., dropped: _Optional[_Iterable[str]] = ..., backup_id: _Optional[str] = ...) -> None: ...

class EnablePluginRequest(_message.Message):
    __slots__ = ("name", "verify_security")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERIFY_SECURITY_FIELD_NUMBER: _ClassVar[int]
    name: str
    verify_security: bool
    def __init__(self, name: _Optional[str] = ..., verify_security: _Optional[bool] = ...) -> None: ...

class EnablePluginResponse(_message.Message):
    __slots__ = ("summary", "verified")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    VERIFIED_FIELD_NUMBER: _ClassVar[int]
    summary: PluginSummary
    verified: _containers.RepeatedCompositeFieldContainer[IntegrityCheck]
    def __init__(self, summary: _Optional[_Union[PluginSummary, _Mapping]] = ..., verified: _Optional[_Iterable[_Union[IntegrityCheck, _Mapping]]] = ...) -> None: ...

class DisableAllRequest(_message.Message):
    __slots__ = ("except_core", "force", "comment")
    EXCEPT_CORE_FIELD_NUMBER: _ClassVar[int]
    FORCE_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    except_core: bool
    force: bool
    comment: str
    def __init__(self, except_core: _Optional[bool] = ..., force: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class DisableAllResponse(_message.Message):
    __slots__ = ("disabled", "kept")
    DISABLED_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    disabled: _containers.RepeatedScalarFieldContainer[str]
    kept: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, disabled: _Optional[_Iterable[str]] = ..., kept: _Optional[_Iterable[str]] = ...) -> None: ...

class RevokeAllRequest(_message.Message):
    __slots__ = ("comment",)
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    comment: str
    def __init__(self, comment: _Optional[str] = ...) -> None: ...

class SetSafeModeRequest(_message.Message):
    __slots__ = ("enabled", "comment")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    comment: str
    def __init__(self, enabled: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class SafeModeStatus(_message.Message):
    __slots__ = ("enabled", "since_ms", "by", "comment", "plugins")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    SINCE_MS_FIELD_NUMBER: _ClassVar[int]
    BY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    since_ms: int
    by: str
    comment: str
    plugins: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, enabled: _Optional[bool] = ..., since_ms: _Optional[int] = ..., by: _Optional[str] = ..., comment: _Optional[str] = ..., plugins: _Optional[_Iterable[str]] = ...) -> None: ...

class SecurityReportRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class SecurityReportResponse(_message.Message):
    __slots__ = ("generated_at_ms", "safe_mode", "host", "plugins", "integrity_ok", "integrity", "open_alerts", "security_events_24h", "denials_24h", "recent_incidents", "advisory_database", "advisories", "revoked_signers")
    class SecurityEvents24hEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class Denials24hEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    GENERATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    SAFE_MODE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_OK_FIELD_NUMBER: _ClassVar[int]
    INTEGRITY_FIELD_NUMBER: _ClassVar[int]
    OPEN_ALERTS_FIELD_NUMBER: _ClassVar[int]
    SECURITY_EVENTS_24H_FIELD_NUMBER: _ClassVar[int]
    DENIALS_24H_FIELD_NUMBER: _ClassVar[int]
    RECENT_INCIDENTS_FIELD_NUMBER: _ClassVar[int]
    ADVISORY_DATABASE_FIELD_NUMBER: _ClassVar[int]
    ADVISORIES_FIELD_NUMBER: _ClassVar[int]
    REVOKED_SIGNERS_FIELD_NUMBER: _ClassVar[int]
    generated_at_ms: int
    safe_mode: SafeModeStatus
    host: HostSecurity
    plugins: _containers.RepeatedCompositeFieldContainer[PluginSummary]
    integrity_ok: bool
    integrity: _containers.RepeatedCompositeFieldContainer[IntegrityCheck]
    open_alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    security_events_24h: _containers.ScalarMap[str, int]
    denials_24h: _containers.ScalarMap[str, int]
    recent_incidents: _containers.RepeatedCompositeFieldContainer[AuditRecord]
    advisory_database: AdvisoryDatabase
    advisories: _containers.RepeatedCompositeFieldContainer[PluginAdvisories]
    revoked_signers: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, generated_at_ms: _Optional[int] = ..., safe_mode: _Optional[_Union[SafeModeStatus, _Mapping]] = ..., host: _Optional[_Union[HostSecurity, _Mapping]] = ..., plugins: _Optional[_Iterable[_Union[PluginSummary, _Mapping]]] = ..., integrity_ok: _Optional[bool] = ..., integrity: _Optional[_Iterable[_Union[IntegrityCheck, _Mapping]]] = ..., open_alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ..., security_events_24h: _Optional[_Mapping[str, int]] = ..., denials_24h: _Optional[_Mapping[str, int]] = ..., recent_incidents: _Optional[_Iterable[_Union[AuditRecord, _Mapping]]] = ..., advisory_database: _Optional[_Union[AdvisoryDatabase, _Mapping]] = ..., advisories: _Optional[_Iterable[_Union[PluginAdvisories, _Mapping]]] = ..., revoked_signers: _Optional[_Iterable[str]] = ...) -> None: ...

class AdvisoryDatabase(_message.Message):
    __slots__ = ("imported_at_ms", "imported_by", "source", "advisories")
    IMPORTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_BY_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    ADVISORIES_FIELD_NUMBER: _ClassVar[int]
    imported_at_ms: int
    imported_by: str
    source: str
    advisories: int
    def __init__(self, imported_at_ms: _Optional[int] = ..., imported_by: _Optional[str] = ..., source: _Optional[str] = ..., advisories: _Optional[int] = ...) -> None: ...

class PluginAdvisories(_message.Message):
    __slots__ = ("plugin", "findings")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    findings: _containers.RepeatedCompositeFieldContainer[AdvisoryFinding]
    def __init__(self, plugin: _Optional[str] = ..., findings: _Optional[_Iterable[_Union[AdvisoryFinding, _Mapping]]] = ...) -> None: ...

class BackupInfo(_message.Message):
    __slots__ = ("id", "created_at_ms", "reason", "created_by", "bytes", "sha256", "plugins", "comment")
    ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    CREATED_BY_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    id: str
    created_at_ms: int
    reason: str
    created_by: str
    bytes: int
    sha256: str
    plugins: int
    comment: str
    def __init__(self, id: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., reason: _Optional[str] = ..., created_by: _Optional[str] = ..., bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., plugins: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class CreateBackupRequest(_message.Message):
    __slots__ = ("comment",)
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    comment: str
    def __init__(self, comment: _Optional[str] = ...) -> None: ...

class ListBackupsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListBackupsResponse(_message.Message):
    __slots__ = ("backups",)
    BACKUPS_FIELD_NUMBER: _ClassVar[int]
    backups: _containers.RepeatedCompositeFieldContainer[BackupInfo]
    def __init__(self, backups: _Optional[_Iterable[_Union[BackupInfo, _Mapping]]] = ...) -> None: ...

class RestoreBackupRequest(_message.Message):
    __slots__ = ("backup_id", "exclude_plugins", "comment")
    BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_PLUGINS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    backup_id: str
    exclude_plugins: bool
    comment: str
    def __init__(self, backup_id: _Optional[str] = ..., exclude_plugins: _Optional[bool] = ..., comment: _Optional[str] = ...) -> None: ...

class RestoreBackupResponse(_message.Message):
    __slots__ = ("restored", "safety_backup_id", "plugins", "started")
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    SAFETY_BACKUP_ID_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    restored: BackupInfo
    safety_backup_id: str
    plugins: _containers.RepeatedScalarFieldContainer[str]
    started: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, restored: _Optional[_Union[BackupInfo, _Mapping]] = ..., safety_backup_id: _Optional[str] = ..., plugins: _Optional[_Iterable[str]] = ..., started: _Optional[_Iterable[str]] = ...) -> None: ...

class MonitorRequest(_message.Message):
    __slots__ = ("plugin",)
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    def __init__(self, plugin: _Optional[str] = ...) -> None: ...

class PluginUsage(_message.Message):
    __slots__ = ("name", "state", "runtime", "pid", "cpu_usec", "cpu_limit", "memory_bytes", "memory_limit", "pids", "pids_limit", "calls", "denials", "restarts", "open_alerts", "broker_cpu_usec")
    class CallsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    CPU_USEC_FIELD_NUMBER: _ClassVar[int]
    CPU_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    PIDS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    CALLS_FIELD_NUMBER: _ClassVar[int]
    DENIALS_FIELD_NUMBER: _ClassVar[int]
    RESTARTS_FIELD_NUMBER: _ClassVar[int]
    OPEN_ALERTS_FIELD_NUMBER: _ClassVar[int]
    BROKER_CPU_USEC_FIELD_NUMBER: _ClassVar[int]
    name: str
    state: PluginState
    runtime: RuntimePhase
    pid: int
    cpu_usec: int
    cpu_limit: float
    memory_bytes: int
    memory_limit: int
    pids: int
    pids_limit: int
    calls: _containers.ScalarMap[str, int]
    denials: int
    restarts: int
    open_alerts: int
    broker_cpu_usec: int
    def __init__(self, name: _Optional[str] = ..., state: _Optional[_Union[PluginState, str]] = ..., runtime: _Optional[_Union[RuntimePhase, str]] = ..., pid: _Optional[int] = ..., cpu_usec: _Optional[int] = ..., cpu_limit: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., memory_limit: _Optional[int] = ..., pids: _Optional[int] = ..., pids_limit: _Optional[int] = ..., calls: _Optional[_Mapping[str, int]] = ..., denials: _Optional[int] = ..., restarts: _Optional[int] = ..., open_alerts: _Optional[int] = ..., broker_cpu_usec: _Optional[int] = ...) -> None: ...

class MonitorResponse(_message.Message):
    __slots__ = ("ts_ms", "plugins")
    TS_MS_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    ts_ms: int
    plugins: _containers.RepeatedCompositeFieldContainer[PluginUsage]
    def __init__(self, ts_ms: _Optional[int] = ..., plugins: _Optional[_Iterable[_Union[PluginUsage, _Mapping]]] = ...) -> None: ...

class Alert(_message.Message):
    __slots__ = ("id", "plugin", "rule", "kind", "count", "threshold", "window_secs", "raised_at_ms", "quarantined", "message", "acknowledged_at_ms", "acknowledged_by")
    ID_FIELD_NUMBER: _ClassVar[int]
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    RULE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    WINDOW_SECS_FIELD_NUMBER: _ClassVar[int]
    RAISED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGED_BY_FIELD_NUMBER: _ClassVar[int]
    id: int
    plugin: str
    rule: str
    kind: str
    count: int
    threshold: int
    window_secs: int
    raised_at_ms: int
    quarantined: bool
    message: str
    acknowledged_at_ms: int
    acknowledged_by: str
    def __init__(self, id: _Optional[int] = ..., plugin: _Optional[str] = ..., rule: _Optional[str] = ..., kind: _Optional[str] = ..., count: _Optional[int] = ..., threshold: _Optional[int] = ..., window_secs: _Optional[int] = ..., raised_at_ms: _Optional[int] = ..., quarantined: _Optional[bool] = ..., message: _Optional[str] = ..., acknowledged_at_ms: _Optional[int] = ..., acknowledged_by: _Optional[str] = ...) -> None: ...

class ListAlertsRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class ListAlertsResponse(_message.Message):
    __slots__ = ("alerts",)
    ALERTS_FIELD_NUMBER: _ClassVar[int]
    alerts: _containers.RepeatedCompositeFieldContainer[Alert]
    def __init__(self, alerts: _Optional[_Iterable[_Union[Alert, _Mapping]]] = ...) -> None: ...

class AcknowledgeAlertRequest(_message.Message):
    __slots__ = ("id", "comment")
    ID_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    id: int
    comment: str
    def __init__(self, id: _Optional[int] = ..., comment: _Optional[str] = ...) -> None: ...

class PackageChunk(_message.Message):
    __slots__ = ("header", "entry", "data", "end")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    entry: PackageEntry
    data: bytes
    end: PackageEnd
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., entry: _Optional[_Union[PackageEntry, _Mapping]] = ..., data: _Optional[bytes] = ..., end: _Optional[_Union[PackageEnd, _Mapping]] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("intent", "name", "origin", "archive", "signature")
    INTENT_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    ARCHIVE_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    intent: UploadIntent
    name: str
    origin: str
    archive: bool
    signature: str
    def __init__(self, intent: _Optional[_Union[UploadIntent, str]] = ..., name: _Optional[str] = ..., origin: _Optional[str] = ..., archive: _Optional[bool] = ..., signature: _Optional[str] = ...) -> None: ...

class PackageEntry(_message.Message):
    __slots__ = ("path", "kind", "mode", "size")
    PATH_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    kind: EntryKind
    mode: int
    size: int
    def __init__(self, path: _Optional[str] = ..., kind: _Optional[_Union[EntryKind, str]] = ..., mode: _Optional[int] = ..., size: _Optional[int] = ...) -> None: ...

class PackageEnd(_message.Message):
    __slots__ = ("entries", "bytes")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    entries: int
    bytes: int
    def __init__(self, entries: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class UploadPluginResponse(_message.Message):
    __slots__ = ("summary", "update")
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    summary: PluginSummary
    update: UpdatePluginResponse
    def __init__(self, summary: _Optional[_Union[PluginSummary, _Mapping]] = ..., update: _Optional[_Union[UpdatePluginResponse, _Mapping]] = ...) -> None: ...

class GetPluginSettingsRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class PluginSettings(_message.Message):
    __slots__ = ("plugin", "settings")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    settings: _containers.RepeatedCompositeFieldContainer[PluginSetting]
    def __init__(self, plugin: _Optional[str] = ..., settings: _Optional[_Iterable[_Union[PluginSetting, _Mapping]]] = ...) -> None: ...

class PluginSetting(_message.Message):
    __slots__ = ("key", "type", "description", "secret", "choices", "default_value", "is_set", "value", "updated_at_ms", "updated_by")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    CHOICES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_VALUE_FIELD_NUMBER: _ClassVar[int]
    IS_SET_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_BY_FIELD_NUMBER: _ClassVar[int]
    key: str
    type: SettingType
    description: str
    secret: bool
    choices: _containers.RepeatedScalarFieldContainer[str]
    default_value: str
    is_set: bool
    value: str
    updated_at_ms: int
    updated_by: str
    def __init__(self, key: _Optional[str] = ..., type: _Optional[_Union[SettingType, str]] = ..., description: _Optional[str] = ..., secret: _Optional[bool] = ..., choices: _Optional[_Iterable[str]] = ..., default_value: _Optional[str] = ..., is_set: _Optional[bool] = ..., value: _Optional[str] = ..., updated_at_ms: _Optional[int] = ..., updated_by: _Optional[str] = ...) -> None: ...

class SetPluginSettingRequest(_message.Message):
    __slots__ = ("name", "key", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    key: str
    value: str
    def __init__(self, name: _Optional[str] = ..., key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class UnsetPluginSettingRequest(_message.Message):
    __slots__ = ("name", "key")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KEY_FIELD_NUMBER: _ClassVar[int]
    name: str
    key: str
    def __init__(self, name: _Optional[str] = ..., key: _Optional[str] = ...) -> None: ...

class DeclaredCommand(_message.Message):
    __slots__ = ("name", "description", "arguments")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    arguments: _containers.RepeatedCompositeFieldContainer[CommandArgument]
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., arguments: _Optional[_Iterable[_Union[CommandArgument, _Mapping]]] = ...) -> None: ...

class CommandArgument(_message.Message):
    __slots__ = ("name", "description", "required")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    name: str
    description: str
    required: bool
    def __init__(self, name: _Optional[str] = ..., description: _Optional[str] = ..., required: _Optional[bool] = ...) -> None: ...

class AddTrustedKeyRequest(_message.Message):
    __slots__ = ("public_key", "publisher", "plugins", "comment")
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    public_key: str
    publisher: str
    plugins: str
    comment: str
    def __init__(self, public_key: _Optional[str] = ..., publisher: _Optional[str] = ..., plugins: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class ListTrustedKeysRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTrustedKeysResponse(_message.Message):
    __slots__ = ("keys",)
    KEYS_FIELD_NUMBER: _ClassVar[int]
    keys: _containers.RepeatedCompositeFieldContainer[TrustedKey]
    def __init__(self, keys: _Optional[_Iterable[_Union[TrustedKey, _Mapping]]] = ...) -> None: ...

class TrustKeyChange(_message.Message):
    __slots__ = ("fingerprint", "comment")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    comment: str
    def __init__(self, fingerprint: _Optional[str] = ..., comment: _Optional[str] = ...) -> None: ...

class TrustedKey(_message.Message):
    __slots__ = ("fingerprint", "publisher", "plugins", "state", "public_key", "comment", "proposed_by", "proposed_at_ms", "approved_by", "approved_at_ms", "ended_by", "ended_at_ms", "end_comment", "signed_plugins")
    FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    PUBLISHER_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    COMMENT_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_BY_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    APPROVED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    ENDED_BY_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    END_COMMENT_FIELD_NUMBER: _ClassVar[int]
    SIGNED_PLUGINS_FIELD_NUMBER: _ClassVar[int]
    fingerprint: str
    publisher: str
    plugins: str
    state: TrustState
    public_key: str
    comment: str
    proposed_by: str
    proposed_at_ms: int
    approved_by: str
    approved_at_ms: int
    ended_by: str
    ended_at_ms: int
    end_comment: str
    signed_plugins: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, fingerprint: _Optional[str] = ..., publisher: _Optional[str] = ..., plugins: _Optional[str] = ..., state: _Optional[_Union[TrustState, str]] = ..., public_key: _Optional[str] = ..., comment: _Optional[str] = ..., proposed_by: _Optional[str] = ..., proposed_at_ms: _Optional[int] = ..., approved_by: _Optional[str] = ..., approved_at_ms: _Optional[int] = ..., ended_by: _Optional[str] = ..., ended_at_ms: _Optional[int] = ..., end_comment: _Optional[str] = ..., signed_plugins: _Optional[_Iterable[str]] = ...) -> None: ...

class AdvisoryChunk(_message.Message):
    __slots__ = ("source", "data")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    source: str
    data: bytes
    def __init__(self, source: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class ImportAdvisoriesResponse(_message.Message):
    __slots__ = ("database", "flagged")
    DATABASE_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    database: AdvisoryDatabase
    flagged: _containers.RepeatedCompositeFieldContainer[PluginAdvisories]
    def __init__(self, database: _Optional[_Union[AdvisoryDatabase, _Mapping]] = ..., flagged: _Optional[_Iterable[_Union[PluginAdvisories, _Mapping]]] = ...) -> None: ...

class PluginReview(_message.Message):
    __slots__ = ("plugin", "permissions", "signer_key", "package", "settings", "update")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    SIGNER_KEY_FIELD_NUMBER: _ClassVar[int]
    PACKAGE_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    plugin: PluginDetail
    permissions: _containers.RepeatedCompositeFieldContainer[PermissionReview]
    signer_key: TrustedKey
    package: PackageReview
    settings: _containers.RepeatedCompositeFieldContainer[PluginSetting]
    update: UpdateReview
    def __init__(self, plugin: _Optional[_Union[PluginDetail, _Mapping]] = ..., permissions: _Optional[_Iterable[_Union[PermissionReview, _Mapping]]] = ..., signer_key: _Optional[_Union[TrustedKey, _Mapping]] = ..., package: _Optional[_Union[PackageReview, _Mapping]] = ..., settings: _Optional[_Iterable[_Union[PluginSetting, _Mapping]]] = ..., update: _Optional[_Union[UpdateReview, _Mapping]] = ...) -> None: ...

class PermissionReview(_message.Message):
    __slots__ = ("permission", "risk", "scope", "justification", "allows", "status", "required_approvals")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    RISK_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    JUSTIFICATION_FIELD_NUMBER: _ClassVar[int]
    ALLOWS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_APPROVALS_FIELD_NUMBER: _ClassVar[int]
    permission: str
    risk: Risk
    scope: _containers.RepeatedScalarFieldContainer[str]
    justification: str
    allows: str
    status: PermissionStatus
    required_approvals: int
    def __init__(self, permission: _Optional[str] = ..., risk: _Optional[_Union[Risk, str]] = ..., scope: _Optional[_Iterable[str]] = ..., justification: _Optional[str] = ..., allows: _Optional[str] = ..., status: _Optional[_Union[PermissionStatus, str]] = ..., required_approvals: _Optional[int] = ...) -> None: ...

class PackageReview(_message.Message):
    __slots__ = ("runtime", "files", "bytes", "entry")
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    runtime: RuntimeKind
    files: _containers.RepeatedCompositeFieldContainer[PackageFile]
    bytes: int
    entry: EntryLinkage
    def __init__(self, runtime: _Optional[_Union[RuntimeKind, str]] = ..., files: _Optional[_Iterable[_Union[PackageFile, _Mapping]]] = ..., bytes: _Optional[int] = ..., entry: _Optional[_Union[EntryLinkage, _Mapping]] = ...) -> None: ...

class EntryLinkage(_message.Message):
    __slots__ = ("path", "format", "static_binary", "interpreter", "needed")
    PATH_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    STATIC_BINARY_FIELD_NUMBER: _ClassVar[int]
    INTERPRETER_FIELD_NUMBER: _ClassVar[int]
    NEEDED_FIELD_NUMBER: _ClassVar[int]
    path: str
    format: str
    static_binary: bool
    interpreter: str
    needed: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, path: _Optional[str] = ..., format: _Optional[str] = ..., static_binary: _Optional[bool] = ..., interpreter: _Optional[str] = ..., needed: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateReview(_message.Message):
    __slots__ = ("previous_version", "previous_signer", "permissions", "files")
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_SIGNER_FIELD_NUMBER: _ClassVar[int]
    PERMISSIONS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    previous_version: str
    previous_signer: Signer
    permissions: _containers.RepeatedCompositeFieldContainer[PermissionChange]
    files: _containers.RepeatedCompositeFieldContainer[FileChange]
    def __init__(self, previous_version: _Optional[str] = ..., previous_signer: _Optional[_Union[Signer, _Mapping]] = ..., permissions: _Optional[_Iterable[_Union[PermissionChange, _Mapping]]] = ..., files: _Optional[_Iterable[_Union[FileChange, _Mapping]]] = ...) -> None: ...

class PermissionChange(_message.Message):
    __slots__ = ("permission", "change", "before", "after")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    permission: str
    change: str
    before: _containers.RepeatedScalarFieldContainer[str]
    after: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, permission: _Optional[str] = ..., change: _Optional[str] = ..., before: _Optional[_Iterable[str]] = ..., after: _Optional[_Iterable[str]] = ...) -> None: ...

class FileChange(_message.Message):
    __slots__ = ("path", "change")
    PATH_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    path: str
    change: str
    def __init__(self, path: _Optional[str] = ..., change: _Optional[str] = ...) -> None: ...

class TrialRequest(_message.Message):
    __slots__ = ("plugin", "duration_ms", "events", "invocations", "fixture_db", "fixture_http")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    FIXTURE_DB_FIELD_NUMBER: _ClassVar[int]
    FIXTURE_HTTP_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    duration_ms: int
    events: _containers.RepeatedCompositeFieldContainer[TrialEvent]
    invocations: _containers.RepeatedCompositeFieldContainer[TrialInvocation]
    fixture_db: bytes
    fixture_http: str
    def __init__(self, plugin: _Optional[str] = ..., duration_ms: _Optional[int] = ..., events: _Optional[_Iterable[_Union[TrialEvent, _Mapping]]] = ..., invocations: _Optional[_Iterable[_Union[TrialInvocation, _Mapping]]] = ..., fixture_db: _Optional[bytes] = ..., fixture_http: _Optional[str] = ...) -> None: ...

class TrialEvent(_message.Message):
    __slots__ = ("topic", "payload")
    TOPIC_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    topic: str
    payload: bytes
    def __init__(self, topic: _Optional[str] = ..., payload: _Optional[bytes] = ...) -> None: ...

class TrialInvocation(_message.Message):
    __slots__ = ("command", "args")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    command: str
    args: bytes
    def __init__(self, command: _Optional[str] = ..., args: _Optional[bytes] = ...) -> None: ...

class TrialAttempt(_message.Message):
    __slots__ = ("permission", "target", "call", "requested", "from_fixture", "count")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    CALL_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    FROM_FIXTURE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    permission: str
    target: str
    call: str
    requested: bool
    from_fixture: bool
    count: int
    def __init__(self, permission: _Optional[str] = ..., target: _Optional[str] = ..., call: _Optional[str] = ..., requested: _Optional[bool] = ..., from_fixture: _Optional[bool] = ..., count: _Optional[int] = ...) -> None: ...

class TrialLine(_message.Message):
    __slots__ = ("permission", "target", "verdict", "text")
    PERMISSION_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    permission: str
    target: str
    verdict: str
    text: str
    def __init__(self, permission: _Optional[str] = ..., target: _Optional[str] = ..., verdict: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class TrialSyscall(_message.Message):
    __slots__ = ("name", "count")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    name: str
    count: int
    def __init__(self, name: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class TrialPeaks(_message.Message):
    __slots__ = ("cpu_usec", "cpu_peak_millicores", "memory_bytes", "pids", "source")
    CPU_USEC_FIELD_NUMBER: _ClassVar[int]
    CPU_PEAK_MILLICORES_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    PIDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    cpu_usec: int
    cpu_peak_millicores: int
    memory_bytes: int
    pids: int
    source: str
    def __init__(self, cpu_usec: _Optional[int] = ..., cpu_peak_millicores: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., pids: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class TrialInvocationResult(_message.Message):
    __slots__ = ("command", "ok", "output")
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    command: str
    ok: bool
    output: str
    def __init__(self, command: _Optional[str] = ..., ok: _Optional[bool] = ..., output: _Optional[str] = ...) -> None: ...

class TrialReport(_message.Message):
    __slots__ = ("plugin", "version", "ran_ms", "lines", "attempts", "attempts_dropped", "syscalls", "peaks", "exit", "crashed", "log_tail", "invocations", "events_delivered", "confined")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    RAN_MS_FIELD_NUMBER: _ClassVar[int]
    LINES_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_DROPPED_FIELD_NUMBER: _ClassVar[int]
    SYSCALLS_FIELD_NUMBER: _ClassVar[int]
    PEAKS_FIELD_NUMBER: _ClassVar[int]
    EXIT_FIELD_NUMBER: _ClassVar[int]
    CRASHED_FIELD_NUMBER: _ClassVar[int]
    LOG_TAIL_FIELD_NUMBER: _ClassVar[int]
    INVOCATIONS_FIELD_NUMBER: _ClassVar[int]
    EVENTS_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    CONFINED_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    version: str
    ran_ms: int
    lines: _containers.RepeatedCompositeFieldContainer[TrialLine]
    attempts: _containers.RepeatedCompositeFieldContainer[TrialAttempt]
    attempts_dropped: int
    syscalls: _containers.RepeatedCompositeFieldContainer[TrialSyscall]
    peaks: TrialPeaks
    exit: str
    crashed: bool
    log_tail: _containers.RepeatedScalarFieldContainer[str]
    invocations: _containers.RepeatedCompositeFieldContainer[TrialInvocationResult]
    events_delivered: int
    confined: bool
    def __init__(self, plugin: _Optional[str] = ..., version: _Optional[str] = ..., ran_ms: _Optional[int] = ..., lines: _Optional[_Iterable[_Union[TrialLine, _Mapping]]] = ..., attempts: _Optional[_Iterable[_Union[TrialAttempt, _Mapping]]] = ..., attempts_dropped: _Optional[int] = ..., syscalls: _Optional[_Iterable[_Union[TrialSyscall, _Mapping]]] = ..., peaks: _Optional[_Union[TrialPeaks, _Mapping]] = ..., exit: _Optional[str] = ..., crashed: _Optional[bool] = ..., log_tail: _Optional[_Iterable[str]] = ..., invocations: _Optional[_Iterable[_Union[TrialInvocationResult, _Mapping]]] = ..., events_delivered: _Optional[int] = ..., confined: _Optional[bool] = ...) -> None: ...
