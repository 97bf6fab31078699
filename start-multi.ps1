<#
.SYNOPSIS
Runs several Nexus Chat instances as one local cluster (PostgreSQL + Redis).

.DESCRIPTION
The PowerShell twin of start-multi.sh: keep the two in step.

Starts N Nexus Chat instances sharing one PostgreSQL database and one Redis, waits until each
answers GET /ready, prints their URLs and keeps their logs in files.

Settings: variables already in the environment win over the env file (as the server's own .env
loading does). When no database is configured, DATABASE_URL=postgres://postgres@127.0.0.1:5432/nexus_chat
is used; when no Redis is configured, REDIS_URL=redis://127.0.0.1:6379. Legacy DB_HOST/DB_PORT/
DB_USERNAME/DB_PASSWORD/DB_NAME and REDIS_HOST/REDIS_PORT are understood too. Without JWT_SECRET
one is generated for this run and shared by all instances. Each instance gets PORT=<its port>
and INSTANCE_ID=node-<its port>; NO_COLOR=1 keeps colour codes out of the log files unless
NO_COLOR is set already. Unless WORKER_THREADS is set, each instance gets cores / instances
worker threads (at least 1), so that together they use the machine's cores once.

Before starting, the script checks that PostgreSQL and Redis accept TCP connections, and, when
psql is installed, creates the PostgreSQL database if it does not exist yet. It then applies the
migrations once ('nexus-chat migrate') and starts the instances.

Each instance's log (the server logs to stderr) is .run/instance-<port>.log; its stdout, normally
empty, goes to .run/instance-<port>.out.log (Start-Process cannot send both to one file).

Environment:
  NEXUS_BIN              server binary to run (default: <cargo target dir>/release/nexus-chat)
  NEXUS_RUN_DIR          logs and pid files (default: .run next to this script)
  NEXUS_READY_TIMEOUT    seconds to wait for each instance's /ready (default 60)
  NEXUS_STOP_TIMEOUT     seconds to wait for a graceful stop before killing (default 20)

On Windows there is no SIGTERM: in the foreground, Ctrl-C reaches the instances (they share the
console) and they stop gracefully; 'stop' ends detached instances forcefully.

.PARAMETER Action
start (default), stop (the instances a -Detach run started) or status (exit 0: all ready,
1: some not, 3: none recorded).

.PARAMETER Count
Number of instances (default 3). Alias -n.

.PARAMETER Port
Port of the first instance; the others follow (default 3000). Alias -p.

.PARAMETER EnvFile
Settings file loaded into the instances' environment (default: .env next to this script, when
present). Alias -e.

.PARAMETER NoBuild
Do not run 'cargo build --release' first.

.PARAMETER Foreground
Stay in the foreground; Ctrl-C stops every instance (the default).

.PARAMETER Detach
Return once all are ready and leave them running.

.PARAMETER Help
This help. Alias -h.

.EXAMPLE
.\start-multi.ps1
3 instances on ports 3000-3002, in the foreground; Ctrl-C stops them.

.EXAMPLE
.\start-multi.ps1 -Count 2 -Port 4000 -Detach
2 instances on ports 4000-4001, left running; then .\start-multi.ps1 status / .\start-multi.ps1 stop.
#>
param(
    [string]$Action = 'start',
    [Alias('n')][string]$Count = '3',
    [Alias('p')][string]$Port = '3000',
    [Alias('e')][string]$EnvFile = '',
    [switch]$NoBuild,
    [switch]$Foreground,
    [switch]$Detach,
    [Alias('h')][switch]$Help
)

# Works with Windows PowerShell 5.1 and PowerShell 7+ (Windows, Linux, macOS).
$ProgressPreference = 'SilentlyContinue'

# ----------------------------------------------------------------------------------------------
# Output helpers
# ----------------------------------------------------------------------------------------------

function Say([string]$Text) { Write-Host $Text }
function Step([string]$Text) { Write-Host "==> $Text" }
function Warn([string]$Text) { [Console]::Error.WriteLine("warning: $Text") }
function Err([string]$Text) { [Console]::Error.WriteLine("error: $Text") }
function Have([string]$Name) { return [bool](Get-Command $Name -CommandType Application -ErrorAction SilentlyContinue) }

$DefaultDatabaseUrl = 'postgres://postgres@127.0.0.1:5432/nexus_chat'
$DefaultRedisUrl = 'redis://127.0.0.1:6379'
$Self = $MyInvocation.InvocationName
if (-not $Self -or $Self -notlike '*.ps1') { $Self = '.\start-multi.ps1' }

function Show-Usage {
    @"
Usage: $Self [start] [options]
       $Self stop
       $Self status

Starts N Nexus Chat instances sharing one PostgreSQL database and one Redis, waits until each
answers GET /ready, prints their URLs and keeps their logs in files.

Actions:
  start (default)        start the instances
  stop                   stop the instances a -Detach run started
  status                 show each recorded instance, its pid and its /ready answer
                         (exit 0: all ready, 1: some not, 3: none recorded)

Options (start):
  -Count N    (-n)       number of instances (default 3)
  -Port FIRST (-p)       port of the first instance; the others follow (default 3000)
  -EnvFile F  (-e)       settings file loaded into the instances' environment
                         (default: .env next to this script, when present)
  -NoBuild               do not run 'cargo build --release' first
  -Foreground            stay in the foreground; Ctrl-C stops every instance (default)
  -Detach                return once all are ready and leave them running
  -Help       (-h)       this help (Get-Help $Self -Full says more)

Defaults when nothing is configured: DATABASE_URL=$DefaultDatabaseUrl,
REDIS_URL=$DefaultRedisUrl; without JWT_SECRET one is generated for the run.
Environment: NEXUS_BIN, NEXUS_RUN_DIR, NEXUS_READY_TIMEOUT (60), NEXUS_STOP_TIMEOUT (20).
"@
}

if ($Help) { Show-Usage; exit 0 }

# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

$Action = $Action.ToLowerInvariant()
if (@('start', 'stop', 'status') -notcontains $Action) {
    Err "unknown argument: $Action"
    [Console]::Error.WriteLine((Show-Usage))
    exit 2
}
if ($args.Count -gt 0) {
    Err "unknown argument: $($args[0])"
    [Console]::Error.WriteLine((Show-Usage))
    exit 2
}
function Test-UInt([string]$Text) { return ($Text -match '^[0-9]+$') }

if (-not (Test-UInt $Count) -or [long]$Count -lt 1 -or [long]$Count -gt 100) {
    Err "-Count must be a whole number from 1 to 100, got '$Count'"
    exit 2
}
$NCount = [int]$Count
if (-not (Test-UInt $Port) -or [long]$Port -lt 1 -or ([long]$Port + $NCount - 1) -gt 65535) {
    Err "-Port must be a port number such that all $NCount ports fit below 65536, got '$Port'"
    exit 2
}
$FirstPort = [int]$Port
$ReadyTimeout = if ($env:NEXUS_READY_TIMEOUT) { $env:NEXUS_READY_TIMEOUT } else { '60' }
$StopTimeout = if ($env:NEXUS_STOP_TIMEOUT) { $env:NEXUS_STOP_TIMEOUT } else { '20' }
if (-not (Test-UInt $ReadyTimeout)) { Err 'NEXUS_READY_TIMEOUT must be a whole number of seconds'; exit 1 }
if (-not (Test-UInt $StopTimeout)) { Err 'NEXUS_STOP_TIMEOUT must be a whole number of seconds'; exit 1 }
$ReadyTimeout = [int]$ReadyTimeout
$StopTimeout = [int]$StopTimeout
$DoDetach = [bool]$Detach
$DoBuild = -not $NoBuild

$OnWindows = ($PSVersionTable.PSEdition -eq 'Desktop') -or ($IsWindows -eq $true)
$OrigPwd = (Get-Location -PSProvider FileSystem).Path
$ScriptDir = $PSScriptRoot
if (-not $ScriptDir) { $ScriptDir = Split-Path -Parent $MyInvocation.MyCommand.Path }

# An absolute path for a path the user typed relative to where they ran the script.
function From-Caller([string]$Path) {
    if ([IO.Path]::IsPathRooted($Path)) { return $Path }
    return [IO.Path]::GetFullPath((Join-Path $OrigPwd $Path))
}

$EnvFileGiven = [bool]$EnvFile
if ($EnvFile) { $EnvFile = From-Caller $EnvFile }
$NexusBin = if ($env:NEXUS_BIN) { From-Caller $env:NEXUS_BIN } else { '' }
if ($env:NEXUS_RUN_DIR) {
    $RunDir = From-Caller $env:NEXUS_RUN_DIR
    $Again = "`$env:NEXUS_RUN_DIR='$RunDir'; $Self"
} else {
    $RunDir = Join-Path $ScriptDir '.run'
    $Again = $Self
}

# ----------------------------------------------------------------------------------------------
# Environment of the children. A script runs inside the caller's PowerShell process, so every
# variable we set is put back as it was when the script ends (see the finally block).
# ----------------------------------------------------------------------------------------------

$EnvBackup = @{}
function Set-ChildEnv([string]$Name, [string]$Value) {
    if (-not $script:EnvBackup.ContainsKey($Name)) {
        $script:EnvBackup[$Name] = [Environment]::GetEnvironmentVariable($Name, 'Process')
    }
    [Environment]::SetEnvironmentVariable($Name, $Value, 'Process')
}
function Restore-ChildEnv {
    foreach ($name in @($script:EnvBackup.Keys)) {
        [Environment]::SetEnvironmentVariable($name, $script:EnvBackup[$name], 'Process')
    }
    $script:EnvBackup.Clear()
}
function Get-EnvVar([string]$Name) { return [Environment]::GetEnvironmentVariable($Name, 'Process') }

# ----------------------------------------------------------------------------------------------
# Small tools: TCP probe, HTTP status, URL parsing, env file
# ----------------------------------------------------------------------------------------------

# Test-Tcp HOST PORT [MS]: true when something accepts a TCP connection there.
function Test-Tcp([string]$HostName, [int]$PortNumber, [int]$TimeoutMs = 3000) {
    $client = New-Object System.Net.Sockets.TcpClient
    try {
        $task = $client.ConnectAsync($HostName.Trim('[', ']'), $PortNumber)
        if (-not $task.Wait($TimeoutMs)) { return $false }
        return [bool]$client.Connected
    } catch {
        return $false
    } finally {
        $client.Close()
    }
}

# Get-HttpStatus URL: the HTTP status code as three digits (000 when nothing answers).
function Get-HttpStatus([string]$Url) {
    $code = 0
    try {
        $response = Invoke-WebRequest -Uri $Url -UseBasicParsing -TimeoutSec 2 -ErrorAction Stop
        $code = [int]$response.StatusCode
    } catch {
        $response = $null
        if ($_.Exception.PSObject.Properties['Response']) { $response = $_.Exception.Response }
        if ($null -ne $response) {
            try { $code = [int]$response.StatusCode } catch { $code = 0 }
        }
    }
    return '{0:D3}' -f $code
}

function UrlDecode([string]$Text) { return [Uri]::UnescapeDataString($Text) }

# ConvertFrom-Url URL: User Pass Host Port Path Query (first host only).
function ConvertFrom-Url([string]$Url) {
    $rest = $Url
    $i = $rest.IndexOf('://')
    if ($i -ge 0) { $rest = $rest.Substring($i + 3) }
    $query = ''
    $i = $rest.IndexOf('?')
    if ($i -ge 0) { $query = $rest.Substring($i + 1); $rest = $rest.Substring(0, $i) }
    $i = $rest.IndexOf('#')
    if ($i -ge 0) { $rest = $rest.Substring(0, $i) }
    $i = $rest.IndexOf('/')
    if ($i -ge 0) { $authority = $rest.Substring(0, $i); $path = $rest.Substring($i + 1) }
    else { $authority = $rest; $path = '' }
    $user = ''; $pass = ''
    $i = $authority.LastIndexOf('@')
    if ($i -ge 0) {
        $userinfo = $authority.Substring(0, $i)
        $hostport = $authority.Substring($i + 1)
        $j = $userinfo.IndexOf(':')
        if ($j -ge 0) { $user = UrlDecode $userinfo.Substring(0, $j); $pass = UrlDecode $userinfo.Substring($j + 1) }
        else { $user = UrlDecode $userinfo }
    } else {
        $hostport = $authority
    }
    $i = $hostport.IndexOf(',')
    if ($i -ge 0) { $hostport = $hostport.Substring(0, $i) }
    $portText = ''
    $close = $hostport.IndexOf(']')
    if ($hostport.StartsWith('[') -and $close -gt 0) {
        $hostName = $hostport.Substring(1, $close - 1)
        if ($hostport.Length -gt $close + 1 -and $hostport[$close + 1] -eq ':') { $portText = $hostport.Substring($close + 2) }
    } else {
        $i = $hostport.IndexOf(':')
        if ($i -ge 0) { $hostName = $hostport.Substring(0, $i); $portText = $hostport.Substring($i + 1) }
        else { $hostName = $hostport }
    }
    return [pscustomobject]@{
        User  = $user
        Pass  = $pass
        Host  = (UrlDecode $hostName)
        Port  = $portText
        Path  = (UrlDecode $path)
        Query = $query
    }
}

# Get-QueryParam QUERY NAME: the value of NAME in a query string, or $null.
function Get-QueryParam([string]$Query, [string]$Name) {
    foreach ($pair in $Query.Split('&')) {
        $i = $pair.IndexOf('=')
        if ($i -ge 0 -and $pair.Substring(0, $i) -eq $Name) { return (UrlDecode $pair.Substring($i + 1)) }
    }
    return $null
}

# Import-EnvFile FILE: KEY=VALUE lines (dotenv syntax: comments, 'export ', quotes, ${VAR}) are
# set for the children, except keys already in the environment, which win as with the server's
# own loading.
function Import-EnvFile([string]$File) {
    $n = 0
    $loaded = 0
    foreach ($raw in [IO.File]::ReadAllLines($File)) {
        $n++
        $line = $raw.Trim()
        if ($line -eq '' -or $line.StartsWith('#')) { continue }
        if ($line -match '^export\s') { $line = ($line -replace '^export\s+', '').Trim() }
        $eq = $line.IndexOf('=')
        if ($eq -lt 0) { Warn "${File}:${n}: ignored (no '=')"; continue }
        $key = $line.Substring(0, $eq).Trim()
        $val = $line.Substring($eq + 1).Trim()
        if ($key -notmatch '^[A-Za-z_][A-Za-z0-9_]*$') { Warn "${File}:${n}: ignored (invalid name '$key')"; continue }
        $single = $false
        if ($val.StartsWith("'")) {
            $single = $true
            $val = $val.Substring(1)
            $end = $val.IndexOf("'")
            if ($end -ge 0) { $val = $val.Substring(0, $end) }
        } elseif ($val.StartsWith('"')) {
            $val = $val.Substring(1)
            $end = $val.LastIndexOf('"')
            if ($end -ge 0) { $val = $val.Substring(0, $end) }
            $val = $val.Replace('\n', "`n")
        } else {
            # An unquoted value ends at ' #'.
            $val = ($val -replace '\s#.*$', '').Trim()
        }
        if (-not $single) {
            $val = [regex]::Replace($val, '\$\{([A-Za-z_][A-Za-z0-9_]*)\}', {
                    param($m)
                    $v = [Environment]::GetEnvironmentVariable($m.Groups[1].Value, 'Process')
                    if ($null -eq $v) { '' } else { $v }
                })
        }
        if ($null -eq (Get-EnvVar $key)) {
            Set-ChildEnv $key $val
            $loaded++
        }
    }
    Say "    loaded $loaded setting(s) from $File"
}

# Host-Port HOST PORT: host:port, with brackets around an IPv6 address.
function Host-Port([string]$HostName, $PortNumber) {
    if ($HostName.Contains(':')) { return "[$HostName]:$PortNumber" }
    return "${HostName}:$PortNumber"
}

# ----------------------------------------------------------------------------------------------
# Processes and pid files
# ----------------------------------------------------------------------------------------------

function Pid-File($P) { return (Join-Path $RunDir "instance-$P.pid") }
# Written by 'stop' before it ends the instances; removed by the next start.
function Stop-Marker { return (Join-Path $RunDir 'stopping') }
function Log-File($P) { return (Join-Path $RunDir "instance-$P.log") }

# Test-Ours ID: alive and still a 'nexus-chat serve' (guards against a recycled pid).
function Test-Ours($ProcId) {
    if ("$ProcId" -notmatch '^[0-9]+$') { return $false }
    $proc = Get-Process -Id ([int]$ProcId) -ErrorAction SilentlyContinue
    if ($null -eq $proc) { return $false }
    try { if ($proc.HasExited) { return $false } } catch { }
    $cmd = $null
    if ($proc.PSObject.Properties['CommandLine']) { try { $cmd = $proc.CommandLine } catch { $cmd = $null } }
    if (-not $cmd -and $OnWindows) {
        try { $cmd = (Get-CimInstance Win32_Process -Filter "ProcessId = $ProcId" -ErrorAction Stop).CommandLine } catch { $cmd = $null }
    }
    if ($cmd) { return ($cmd -match '\sserve(\s|"|$)') }
    return ($proc.ProcessName -like 'nexus-chat*')
}

# Get-RecordedPorts: the ports that have a pid file in the run directory, sorted.
function Get-RecordedPorts {
    if (-not (Test-Path -LiteralPath $RunDir -PathType Container)) { return @() }
    $ports = @()
    foreach ($f in Get-ChildItem -LiteralPath $RunDir -Filter 'instance-*.pid' -File) {
        $p = $f.Name.Substring(9, $f.Name.Length - 13)
        if (Test-UInt $p) { $ports += [int]$p }
    }
    return @($ports | Sort-Object)
}

function Read-Pid($P) {
    $file = Pid-File $P
    if (-not (Test-Path -LiteralPath $file)) { return '' }
    $first = Get-Content -LiteralPath $file -TotalCount 1 -ErrorAction SilentlyContinue
    if ($null -eq $first) { return '' }
    return "$first".Trim()
}

$KillExe = $null
if (-not $OnWindows) {
    $cmd = Get-Command kill -CommandType Application -ErrorAction SilentlyContinue | Select-Object -First 1
    if ($cmd) { $KillExe = $cmd.Source }
}

# Stop-Instances ITEMS [-Graceful]: ITEMS are @{Port; Id}. On Linux/macOS: SIGTERM, wait up to
# NEXUS_STOP_TIMEOUT, then kill what is left. On Windows there is no SIGTERM: with -Graceful
# (after Ctrl-C, which the instances received too) we wait for them, else we kill at once.
# Returns $false when something had to be killed.
function Stop-Instances($Items, [switch]$Graceful) {
    $Items = @($Items)
    $canWait = $true
    foreach ($item in $Items) {
        if (-not (Test-Ours $item.Id)) { continue }
        if ($KillExe) { & $KillExe -s TERM $item.Id 2>$null | Out-Null }
        elseif ($OnWindows -and -not $Graceful) { $canWait = $false }
    }
    $forced = $false
    $deadline = [DateTime]::UtcNow.AddSeconds($(if ($canWait) { $StopTimeout } else { 0 }))
    while ($true) {
        $left = @($Items | Where-Object { Test-Ours $_.Id })
        if ($left.Count -eq 0) { break }
        if ([DateTime]::UtcNow -ge $deadline) {
            foreach ($item in $left) {
                if ($canWait) { Warn "node-$($item.Port) (pid $($item.Id)) did not stop within ${StopTimeout}s: killing it" }
                Stop-Process -Id $item.Id -Force -ErrorAction SilentlyContinue
            }
            if ($canWait) { $forced = $true }
            Start-Sleep -Milliseconds 500
            break
        }
        Start-Sleep -Milliseconds 200
    }
    foreach ($item in $Items) {
        Remove-Item -LiteralPath (Pid-File $item.Port) -Force -ErrorAction SilentlyContinue
        Say "    stopped node-$($item.Port) (pid $($item.Id))"
    }
    return (-not $forced)
}

# The host to probe an instance on: HOST, with wildcards replaced by loopback.
function Get-ProbeHost {
    $h = Get-EnvVar 'HOST'
    if (-not $h -or $h -eq '0.0.0.0') { return '127.0.0.1' }
    if ($h -eq '::' -or $h -eq '[::]') { return '[::1]' }
    if ($h.Contains(':')) { return '[' + $h.Trim('[', ']') + ']' }
    return $h
}

# The address we print for people: localhost unless HOST names one specific interface.
function Get-PublicHost {
    $h = Get-EnvVar 'HOST'
    if (-not $h -or @('0.0.0.0', '::', '[::]', '127.0.0.1', '::1', 'localhost') -contains $h) { return 'localhost' }
    return (Get-ProbeHost)
}

# ----------------------------------------------------------------------------------------------
# stop / status
# ----------------------------------------------------------------------------------------------

function Invoke-Stop {
    $items = @()
    $stale = 0
    foreach ($p in Get-RecordedPorts) {
        $procId = Read-Pid $p
        if (Test-Ours $procId) { $items += [pscustomobject]@{ Port = $p; Id = [int]$procId } }
        else { Remove-Item -LiteralPath (Pid-File $p) -Force -ErrorAction SilentlyContinue; $stale++ }
    }
    if ($items.Count -eq 0) {
        if ($stale -gt 0) { Say "No instance recorded in $RunDir is running (removed $stale stale pid file(s))." }
        else { Say "No instance recorded in ${RunDir}: nothing to stop." }
        return 0
    }
    Step "Stopping $($items.Count) instance(s)"
    # Tells a foreground launcher watching these instances that they are being stopped on
    # purpose (it reports that and exits 0, instead of "every instance has exited").
    New-Item -ItemType File -Path (Stop-Marker) -Force | Out-Null
    if ($OnWindows) { Say '    (Windows has no SIGTERM: the instances are ended forcefully)' }
    if (Stop-Instances $items) { Say 'All stopped.' }
    else { Warn "some instances had to be killed; see their logs in $RunDir" }
    return 0
}

function Invoke-Status {
    $ports = @(Get-RecordedPorts)
    if ($ports.Count -eq 0) {
        Say "No instance recorded in $RunDir (start some with: $Self -Detach)."
        return 3
    }
    $probe = Get-ProbeHost
    $public = Get-PublicHost
    $fmt = '{0,-12} {1,-8} {2,-9} {3,-10} {4,-24} {5}'
    Say ($fmt -f 'INSTANCE', 'PID', 'PROCESS', 'READY', 'URL', 'LOG')
    $bad = 0
    foreach ($p in $ports) {
        $procId = Read-Pid $p
        if (Test-Ours $procId) {
            $code = Get-HttpStatus "http://${probe}:$p/ready"
            $ready = if ($code -eq '200') { 'yes' } else { $bad++; "no ($code)" }
            Say ($fmt -f "node-$p", $procId, 'running', $ready, "http://${public}:$p", (Log-File $p))
        } else {
            $shown = if ($procId) { $procId } else { '-' }
            Say ($fmt -f "node-$p", $shown, 'gone', '-', '-', (Log-File $p))
            $bad++
        }
    }
    if ($bad -eq 0) { return 0 } else { return 1 }
}

# ----------------------------------------------------------------------------------------------
# Main. Everything else (cargo, the server's own .env, ./data, ./web/dist) is relative to the
# project, so work from the script's folder; the finally block puts back the caller's location
# and environment, and stops what a foreground run started (also on Ctrl-C).
# ----------------------------------------------------------------------------------------------

$Started = New-Object System.Collections.Generic.List[object]
$KeepRunning = $false
$ExitCode = 0

# The start action. Sets $script:ExitCode; $script:Started holds what it started.
function Invoke-Start {
    # ---- settings ----
    Step 'Settings'
    $dotEnv = Join-Path $ScriptDir '.env'
    if (-not $EnvFile -and (Test-Path -LiteralPath $dotEnv -PathType Leaf)) { $EnvFile = $dotEnv }
    if ($EnvFile) {
        if (-not (Test-Path -LiteralPath $EnvFile -PathType Leaf)) { Err "env file not found or not readable: $EnvFile"; $script:ExitCode = 1; return }
        Import-EnvFile $EnvFile
        if ($EnvFileGiven -and (Test-Path -LiteralPath $dotEnv -PathType Leaf) -and ($EnvFile -ne $dotEnv)) {
            Warn "$dotEnv exists too: the server reads it itself for any setting that neither the environment nor $EnvFile sets"
        }
    } else {
        Say '    no env file (no .env next to the script, no -EnvFile): using the environment'
    }

    if (-not (Get-EnvVar 'DATABASE_URL') -and -not (Get-EnvVar 'DB_HOST')) {
        Set-ChildEnv 'DATABASE_URL' $DefaultDatabaseUrl
        Say "    DATABASE_URL not set: using the default $DefaultDatabaseUrl"
    }
    if (-not (Get-EnvVar 'REDIS_URL') -and -not (Get-EnvVar 'REDIS_HOST')) {
        Set-ChildEnv 'REDIS_URL' $DefaultRedisUrl
        Say "    REDIS_URL not set: using the default $DefaultRedisUrl"
    }
    if (-not (Get-EnvVar 'JWT_SECRET')) {
        $bytes = New-Object byte[] 32
        $rng = [System.Security.Cryptography.RandomNumberGenerator]::Create()
        $rng.GetBytes($bytes)
        $rng.Dispose()
        Set-ChildEnv 'JWT_SECRET' (-join ($bytes | ForEach-Object { $_.ToString('x2') }))
        Warn 'JWT_SECRET is not set: generated one for this run, shared by all instances. Sign-ins will not survive a restart of the cluster unless you set JWT_SECRET (e.g. in .env).'
    }

    # The logs go to files: no colour codes in them, unless asked for.
    if ($null -eq (Get-EnvVar 'NO_COLOR')) { Set-ChildEnv 'NO_COLOR' '1' }

    # The instances share this machine's cores: each gets its share of worker threads (at least
    # 1) unless WORKER_THREADS is set (see start-multi.sh for the measurement).
    if (-not (Get-EnvVar 'WORKER_THREADS')) {
        $cores = [Environment]::ProcessorCount
        $workers = [Math]::Max(1, [Math]::Floor($cores / $NCount))
        Set-ChildEnv 'WORKER_THREADS' ([string]$workers)
        Say "    WORKER_THREADS not set: $workers per instance ($cores cores, $NCount instances)"
    }

    # Where PostgreSQL is, from DATABASE_URL or the legacy DB_* variables (as the server reads them).
    $databaseUrl = Get-EnvVar 'DATABASE_URL'
    if ($databaseUrl) {
        if (-not ($databaseUrl.StartsWith('postgres://') -or $databaseUrl.StartsWith('postgresql://'))) {
            Err 'DATABASE_URL must be a postgres:// or postgresql:// URL'; $script:ExitCode = 1; return
        }
        $u = ConvertFrom-Url $databaseUrl
        $pgHost = if ($u.Host) { $u.Host } else { 'localhost' }
        $fromQuery = Get-QueryParam $u.Query 'host'
        if ($fromQuery) { $pgHost = $fromQuery }
        $pgPort = if ($u.Port) { $u.Port } else { '5432' }
        $pgUser = if ($u.User) { $u.User } elseif ($env:USER) { $env:USER } elseif ($env:USERNAME) { $env:USERNAME } else { 'postgres' }
        $pgPass = $u.Pass
        $pgDb = if ($u.Path) { $u.Path } else { $pgUser }
        $pgSslMode = Get-QueryParam $u.Query 'sslmode'
        $pgFrom = 'DATABASE_URL'
    } else {
        $pgHost = Get-EnvVar 'DB_HOST'
        $pgPort = if (Get-EnvVar 'DB_PORT') { Get-EnvVar 'DB_PORT' } else { '5432' }
        $pgUser = if (Get-EnvVar 'DB_USERNAME') { Get-EnvVar 'DB_USERNAME' } else { 'postgres' }
        $pgPass = Get-EnvVar 'DB_PASSWORD'
        $pgDb = if (Get-EnvVar 'DB_NAME') { Get-EnvVar 'DB_NAME' } elseif (Get-EnvVar 'DB_DATABASE') { Get-EnvVar 'DB_DATABASE' } else { 'postgres' }
        $pgSslMode = $null
        $pgFrom = 'DB_HOST/DB_PORT'
    }
    # Where Redis is, from REDIS_URL or REDIS_HOST/REDIS_PORT.
    $redisUrl = Get-EnvVar 'REDIS_URL'
    if ($redisUrl) {
        $u = ConvertFrom-Url $redisUrl
        $redisHost = if ($u.Host) { $u.Host } else { '127.0.0.1' }
        $redisPort = if ($u.Port) { $u.Port } else { '6379' }
        $redisFrom = 'REDIS_URL'
    } else {
        $redisHost = Get-EnvVar 'REDIS_HOST'
        $redisPort = if (Get-EnvVar 'REDIS_PORT') { Get-EnvVar 'REDIS_PORT' } else { '6379' }
        $redisFrom = 'REDIS_HOST/REDIS_PORT'
    }
    if (-not (Test-UInt $pgPort)) { Err "PostgreSQL port '$pgPort' (from $pgFrom) is not a number"; $script:ExitCode = 1; return }
    if (-not (Test-UInt $redisPort)) { Err "Redis port '$redisPort' (from $redisFrom) is not a number"; $script:ExitCode = 1; return }
    $pgAddr = Host-Port $pgHost $pgPort
    $redisAddr = Host-Port $redisHost $redisPort

    # ---- PostgreSQL and Redis reachable? ----
    Step 'Checking PostgreSQL and Redis'
    $unreachable = $false
    if ($pgHost.StartsWith('/')) {
        Say "    PostgreSQL  unix socket $pgHost (not probed)"
    } elseif (Test-Tcp $pgHost ([int]$pgPort) 3000) {
        Say "    PostgreSQL  $pgAddr  reachable"
    } else {
        Say "    PostgreSQL  $pgAddr  NOT REACHABLE"
        Err "PostgreSQL is not reachable at $pgAddr (from $pgFrom)."
        [Console]::Error.WriteLine(@"
  Start it, for example:
      Start-Service postgresql*                  (Windows service; or: sudo systemctl start postgresql)
      docker run -d --name nexus-postgres -e POSTGRES_HOST_AUTH_METHOD=trust -p ${pgPort}:5432 postgres:17
  or point DATABASE_URL (in the environment or the env file) at a running server.
"@)
        $unreachable = $true
    }
    if (Test-Tcp $redisHost ([int]$redisPort) 3000) {
        Say "    Redis       $redisAddr  reachable"
    } else {
        Say "    Redis       $redisAddr  NOT REACHABLE"
        Err "Redis is not reachable at $redisAddr (from $redisFrom)."
        [Console]::Error.WriteLine(@"
  Start it, for example:
      redis-server --port $redisPort              (or: sudo systemctl start redis-server; Memurai on Windows)
      docker run -d --name nexus-redis -p ${redisPort}:6379 redis:7
  or point REDIS_URL (in the environment or the env file) at a running server.
"@)
        $unreachable = $true
    }
    if ($unreachable) { $script:ExitCode = 1; return }

    # The database itself: create it when missing (needs psql; otherwise the migration step below
    # reports a missing database with the command to run).
    $createdbCmd = "createdb -h $pgHost -p $pgPort -U $pgUser $pgDb"
    if (Have 'psql') {
        $pgVars = @{ PGCONNECT_TIMEOUT = '5'; PGHOST = $pgHost; PGPORT = "$pgPort"; PGUSER = $pgUser }
        if ($pgPass) { $pgVars['PGPASSWORD'] = $pgPass }
        if ($pgSslMode) { $pgVars['PGSSLMODE'] = $pgSslMode }
        # Only psql sees these: saved and put back around each call.
        $saved = @{}
        foreach ($k in (@($pgVars.Keys) + 'PGDATABASE')) { $saved[$k] = Get-EnvVar $k }
        try {
            foreach ($k in $pgVars.Keys) { [Environment]::SetEnvironmentVariable($k, $pgVars[$k], 'Process') }
            $exists = ''
            $maintDb = 'postgres'
            foreach ($candidate in @('postgres', 'template1')) {
                $maintDb = $candidate
                [Environment]::SetEnvironmentVariable('PGDATABASE', $candidate, 'Process')
                $out = "SELECT count(*) FROM pg_database WHERE datname = :'dbname';" |
                    & psql -X -q -t -A -v ON_ERROR_STOP=1 -v "dbname=$pgDb" 2>$null
                if ($LASTEXITCODE -eq 0) { $exists = "$out".Trim(); break }
            }
            if ($exists -eq '1') {
                Say "    database '$pgDb' exists"
            } elseif ($exists -eq '0') {
                Say "    database '$pgDb' does not exist: creating it ($createdbCmd)"
                [Environment]::SetEnvironmentVariable('PGDATABASE', $maintDb, 'Process')
                'CREATE DATABASE :"dbname";' | & psql -X -q -v ON_ERROR_STOP=1 -v "dbname=$pgDb" | Out-Null
                if ($LASTEXITCODE -ne 0) {
                    Err "could not create the database '$pgDb'. Create it yourself: $createdbCmd"
                    $script:ExitCode = 1; return
                }
            } else {
                Say "    could not check whether database '$pgDb' exists with psql; going on"
            }
        } finally {
            foreach ($k in $saved.Keys) { [Environment]::SetEnvironmentVariable($k, $saved[$k], 'Process') }
        }
    }

    # ---- binary ----
    $exe = if ($OnWindows) { 'nexus-chat.exe' } else { 'nexus-chat' }
    if ($NexusBin) {
        $bin = $NexusBin
    } else {
        $targetDir = $null
        if (Have 'cargo') {
            try {
                $meta = (& cargo metadata --format-version 1 --no-deps 2>$null) -join "`n"
                if ($LASTEXITCODE -eq 0 -and $meta) { $targetDir = ($meta | ConvertFrom-Json).target_directory }
            } catch { $targetDir = $null }
        }
        if (-not $targetDir) {
            $targetDir = if ($env:CARGO_TARGET_DIR) { $env:CARGO_TARGET_DIR } else { Join-Path $ScriptDir 'target' }
        }
        $bin = Join-Path (Join-Path $targetDir 'release') $exe
        if ($DoBuild) {
            if (-not (Have 'cargo')) {
                Err 'cargo is not installed: install Rust (https://rustup.rs), or pass -NoBuild with $env:NEXUS_BIN set to the nexus-chat binary'
                $script:ExitCode = 1; return
            }
            Step 'Building the release binary (cargo build --release)'
            & cargo build --release --bin nexus-chat | Out-Host
            if ($LASTEXITCODE -ne 0) { Err 'the build failed (see above)'; $script:ExitCode = 1; return }
        }
    }
    if (-not (Test-Path -LiteralPath $bin -PathType Leaf) -and (Test-Path -LiteralPath "$bin.exe" -PathType Leaf)) { $bin = "$bin.exe" }
    if (-not (Test-Path -LiteralPath $bin -PathType Leaf)) {
        if ($NexusBin) { Err "NEXUS_BIN=$bin is not an executable file" }
        else { Err "no server binary at ${bin}: build it (cargo build --release), drop -NoBuild, or set NEXUS_BIN" }
        $script:ExitCode = 1; return
    }
    Say "    binary: $bin"

    # ---- run directory, ports ----
    New-Item -ItemType Directory -Force -Path $RunDir -ErrorAction Stop | Out-Null
    $running = @()
    foreach ($p in Get-RecordedPorts) {
        $procId = Read-Pid $p
        if (Test-Ours $procId) { $running += "node-$p (pid $procId)" }
        else { Remove-Item -LiteralPath (Pid-File $p) -Force -ErrorAction SilentlyContinue }
    }
    if ($running.Count -gt 0) {
        Err "instances from an earlier run are still running: $($running -join ', '). Stop them first: $Again stop"
        $script:ExitCode = 1; return
    }
    $probeHost = Get-ProbeHost
    $publicHost = Get-PublicHost
    $lastPort = $FirstPort + $NCount - 1
    for ($p = $FirstPort; $p -le $lastPort; $p++) {
        if (Test-Tcp $probeHost $p 1000) {
            Err "port $p is already in use. Pick another first port with -Port (this run needs $FirstPort-$lastPort)."
            $script:ExitCode = 1; return
        }
    }

    # ---- migrations once, then the instances ----
    Step 'Applying database migrations'
    $migrateLog = Join-Path $RunDir 'migrate.log'
    $startArgs = @{
        FilePath               = $bin
        ArgumentList           = 'migrate'
        WorkingDirectory       = $ScriptDir
        RedirectStandardError  = $migrateLog
        RedirectStandardOutput = (Join-Path $RunDir 'migrate.out.log')
        Wait                   = $true
        PassThru               = $true
    }
    if ($OnWindows) { $startArgs['NoNewWindow'] = $true }
    $migrate = Start-Process @startArgs
    if ($migrate.ExitCode -ne 0) {
        Err "'nexus-chat migrate' failed. Last lines of ${migrateLog}:"
        Get-Content -LiteralPath $migrateLog -Tail 20 -ErrorAction SilentlyContinue | ForEach-Object { [Console]::Error.WriteLine("    $_") }
        if (Select-String -LiteralPath $migrateLog -Pattern 'does not exist' -Quiet) {
            [Console]::Error.WriteLine("  If the database is missing, create it: $createdbCmd")
        }
        $script:ExitCode = 1; return
    }

    Remove-Item -LiteralPath (Stop-Marker) -Force -ErrorAction SilentlyContinue
    Step "Starting $NCount instance(s) on ports $FirstPort-$lastPort (logs in $RunDir)"
    for ($p = $FirstPort; $p -le $lastPort; $p++) {
        Set-ChildEnv 'PORT' "$p"
        Set-ChildEnv 'INSTANCE_ID' "node-$p"
        $startArgs = @{
            FilePath               = $bin
            ArgumentList           = 'serve'
            WorkingDirectory       = $ScriptDir
            RedirectStandardError  = (Log-File $p)
            RedirectStandardOutput = (Join-Path $RunDir "instance-$p.out.log")
            PassThru               = $true
        }
        if ($OnWindows) {
            # Detached: a hidden console of its own, which outlives this window. Foreground: our
            # console, so that Ctrl-C reaches the instances and they stop gracefully.
            if ($DoDetach) { $startArgs['WindowStyle'] = 'Hidden' } else { $startArgs['NoNewWindow'] = $true }
        }
        $proc = Start-Process @startArgs
        $Started.Add([pscustomobject]@{ Port = $p; Id = $proc.Id; Process = $proc })
        Set-Content -LiteralPath (Pid-File $p) -Value "$($proc.Id)" -Encoding Ascii
        Say "    node-$p  pid $($proc.Id)"
    }

    Step "Waiting for each instance's /ready (up to ${ReadyTimeout}s each)"
    foreach ($inst in $Started) {
        $url = "http://${probeHost}:$($inst.Port)/ready"
        Write-Host -NoNewline "    node-$($inst.Port) "
        $watch = [Diagnostics.Stopwatch]::StartNew()
        $failure = $null
        $failedPort = $inst.Port
        while ($true) {
            $code = Get-HttpStatus $url
            if ($code -eq '200') {
                Write-Host " ready ($([int]$watch.Elapsed.TotalSeconds)s)"
                break
            }
            # Any instance that died (not only this one) ends the wait at once.
            foreach ($other in $Started) {
                if (-not (Test-Ours $other.Id)) {
                    $status = '?'
                    try { $status = $other.Process.ExitCode } catch { }
                    $failure = "exited (status $status) before it was ready"
                    $failedPort = $other.Port
                    break
                }
            }
            if ($failure) { break }
            if ($watch.Elapsed.TotalSeconds -ge $ReadyTimeout) {
                $failure = "not ready after ${ReadyTimeout}s (last answer from ${url}: $code)"
                break
            }
            Write-Host -NoNewline '.'
            Start-Sleep -Seconds 1
        }
        if ($failure) {
            Write-Host ' failed'
            Err "node-$failedPort $failure. Last lines of $(Log-File $failedPort):"
            Get-Content -LiteralPath (Log-File $failedPort) -Tail 30 -ErrorAction SilentlyContinue | ForEach-Object { [Console]::Error.WriteLine("    $_") }
            Step "Stopping $($Started.Count) instance(s)"
            Stop-Instances $Started | Out-Null
            $Started.Clear()
            $script:ExitCode = 1; return
        }
    }

    Say ''
    Say "Nexus Chat: $NCount instance(s) ready (PostgreSQL $pgAddr/$pgDb, Redis $redisAddr)"
    foreach ($inst in $Started) {
        Say ('    node-{0,-6} http://{1}:{2,-6} pid {3,-8} log {4}' -f $inst.Port, $publicHost, $inst.Port, $inst.Id, (Log-File $inst.Port))
    }
    Say ''

    if ($DoDetach) {
        $script:KeepRunning = $true
        Say "Running in the background. Status: $Again status    Stop: $Again stop"
        $script:ExitCode = 0; return
    }

    Say 'Press Ctrl-C to stop all instances.'
    # Foreground: watch the instances until Ctrl-C (which runs the finally block below).
    $reported = @{}
    $crashed = 0
    while ($true) {
        $alive = 0
        foreach ($inst in $Started) {
            if (Test-Ours $inst.Id) {
                $alive++
            } elseif (-not $reported.ContainsKey($inst.Port)) {
                $reported[$inst.Port] = $true
                $status = '?'
                try { $status = $inst.Process.ExitCode } catch { }
                # Stopped on purpose: 'stop' left its marker (or already removed the pid file).
                if ((Test-Path -LiteralPath (Stop-Marker)) -or -not (Test-Path -LiteralPath (Pid-File $inst.Port))) {
                    Say "    node-$($inst.Port) (pid $($inst.Id)) stopped by '$Again stop' (status $status)"
                } else {
                    $crashed++
                    Warn "node-$($inst.Port) (pid $($inst.Id)) exited on its own (status $status). Last lines of $(Log-File $inst.Port):"
                    Get-Content -LiteralPath (Log-File $inst.Port) -Tail 15 -ErrorAction SilentlyContinue | ForEach-Object { [Console]::Error.WriteLine("    $_") }
                }
                Remove-Item -LiteralPath (Pid-File $inst.Port) -Force -ErrorAction SilentlyContinue
            }
        }
        if ($alive -eq 0) {
            $Started.Clear()
            if ($crashed -eq 0) {
                Say 'All instances were stopped.'
                $script:ExitCode = 0; return
            }
            Err 'every instance has exited'
            $script:ExitCode = 1; return
        }
        Start-Sleep -Seconds 1
    }
}

Push-Location -LiteralPath $ScriptDir
try {
    switch ($Action) {
        'stop' { $ExitCode = Invoke-Stop }
        'status' { $ExitCode = Invoke-Status }
        default { Invoke-Start }
    }
} finally {
    # Reached on success, on error and on Ctrl-C: a foreground run (or an interrupted start)
    # stops what it started.
    if (-not $KeepRunning -and $Started.Count -gt 0) {
        Write-Host ''
        Step "Stopping $($Started.Count) instance(s)"
        if (Stop-Instances $Started -Graceful) { Say 'All stopped.' }
        $Started.Clear()
    }
    Restore-ChildEnv
    Pop-Location
}
exit $ExitCode
