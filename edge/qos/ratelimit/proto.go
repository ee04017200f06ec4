package ratelimit

import (
	"time"

	"github.com/apigw/gateway/proto/duration"
	gatewayv1 "github.com/apigw/gateway/proto/gen/gateway/v1"
)

// RouterConfigFromProto converts `qos/ratelimit/router` settings. ok is
// false when pb is nil or sets neither max_rate nor client_max_rate (no
// limit: keep a nil *Router). Clock, Remote and MaxClients are left for the
// caller.
func RouterConfigFromProto(pb *gatewayv1.RouterRateLimit) (cfg RouterConfig, ok bool) {
	if pb == nil || (pb.GetMaxRate() <= 0 && pb.GetClientMaxRate() <= 0) {
		return RouterConfig{}, false
	}
	return RouterConfig{
		MaxRate:        pb.GetMaxRate(),
		Capacity:       pb.GetCapacity(),
		ClientMaxRate:  pb.GetClientMaxRate(),
		ClientCapacity: pb.GetClientCapacity(),
		Strategy:       Strategy(pb.GetStrategy()),
		Key:            pb.GetKey(),
		Every:          duration.Join(pb.GetEveryMs(), pb.GetEveryNs()),
		NumShards:      int(pb.GetNumShards()),
		CleanupPeriod:  time.Duration(pb.GetCleanupPeriodMs()) * time.Millisecond,
	}, true
}

// BackendConfigFromProto converts `qos/ratelimit/proxy` settings (every is
// not clamped). ok is false when pb is nil or max_rate <= 0 (no limit: keep
// a nil *Bucket).
func BackendConfigFromProto(pb *gatewayv1.BackendRateLimit) (cfg BucketConfig, ok bool) {
	if pb == nil || pb.GetMaxRate() <= 0 {
		return BucketConfig{}, false
	}
	return BucketConfig{
		MaxRate:  pb.GetMaxRate(),
		Capacity: pb.GetCapacity(),
		Every:    duration.Join(pb.GetEveryMs(), pb.GetEveryNs()),
	}, true
}
